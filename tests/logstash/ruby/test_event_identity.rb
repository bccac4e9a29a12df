# Minitest suite for logstash/ruby/event_identity.rb, with real files and the Event stand-in.
# Run: ruby tests/logstash/ruby/test_event_identity.rb (tests/logstash/test_ruby_filters.py runs
# it under MRI and JRuby).
require "digest"
require "json"
require "minitest/autorun"
require "tmpdir"
require_relative "logstash_stub"

IDENTITY_SCRIPT = File.expand_path("../../../logstash/ruby/event_identity.rb", __dir__)
REPLAY = File.expand_path("../data/replay_crash.ndjson", __dir__)

class EventIdentityTest < Minitest::Test
  def setup
    @dir = Dir.mktmpdir("event-identity")
    @log = File.join(@dir, "application.log")
  end

  def teardown
    FileUtils.remove_entry(@dir)
  end

  def build
    ScriptFilter.new(IDENTITY_SCRIPT, "node" => "node-a")
  end

  def line(n, request: "/p#{n}")
    %({"remote_addr":"10.0.0.#{n % 250}","request":"#{request}","status":200})
  end

  def write(path, lines, mode: "w")
    File.open(path, mode) { |f| lines.each { |l| f.write(l + "\n") } }
  end

  # What logstash-input-file 4.4.7 and the json codec 3.1.1 put on an event: the path and host
  # in @metadata (inputs/file.rb, post_process_this) and the line in [event][original].
  def event(path, original, host: "node-a")
    LogStash::Event.new(JSON.parse(original).merge(
      "@metadata" => { "path" => path, "host" => host }, "event" => { "original" => original }
    ))
  end

  def stamp(filter, path, original)
    ev = event(path, original)
    assert_empty filter.filter(ev), "no new events"
    refute ev.cancelled?, "the event itself passes on"
    ev.get("[@metadata][event_id]")
  end

  def key_of(path)
    first = File.open(path, "rb", &:gets)
    "#{File.stat(path).ino}-#{Digest::SHA256.hexdigest(first)[0, 16]}"
  end

  def offsets(lines)
    lines.each_with_object([0]) { |l, acc| acc << acc.last + l.bytesize + 1 }.first(lines.size)
  end

  def test_identical_lines_are_distinct_events_at_their_offsets
    lines = [line(1), line(2), line(2), line(2), line(3, request: "/caf\u00e9/\u65e5\u672c")]
    write(@log, lines)
    filter = build
    ids = lines.map { |l| stamp(filter, @log, l) }
    key = key_of(@log)
    assert_equal offsets(lines).map { |o| "node-a:#{key}:#{o}" }, ids
  end

  def test_a_restart_reproduces_the_ids_of_the_lines_it_reads_again
    lines = (1..20).map { |n| line(n % 4 == 0 ? 0 : n) } # every fourth line identical
    write(@log, lines)
    first = lines.map { |l| stamp(build_once, @log, l) }
    replay = build
    again = lines.drop(9).map { |l| stamp(replay, @log, l) } # resumes at a unique line
    assert_equal first.drop(9), again
  end

  def build_once
    @first ||= build
  end

  def test_a_restart_inside_identical_lines_never_gives_one_id_to_two_lines
    lines = [line(1), line(9), line(9), line(9), line(2), line(3)]
    write(@log, lines)
    first_run = build
    first = lines.map { |l| stamp(first_run, @log, l) }
    replay = build
    again = lines.drop(2).map { |l| stamp(replay, @log, l) } # resumes on the second of three
    # Which of the three identical lines a replayed one is cannot be proven: own ids...
    assert(again.first(2).all? { |id| id.start_with?("node-a:unverified:") })
    refute_equal again[0], again[1]
    # ...until a line that occurs once anchors the position again.
    assert_equal first.drop(4), again.drop(2)
    assert_empty((again & first) - first.drop(4))
  end

  def test_a_rotated_file_keeps_its_ids_and_the_new_file_starts_its_own
    old_lines = (1..6).map { |n| line(n) }
    write(@log, old_lines)
    filter = build
    old_key = key_of(@log)
    ids = old_lines.first(2).map { |l| stamp(filter, @log, l) }
    File.rename(@log, "#{@log}.1")
    new_lines = [line(1), line(7)] # the new file may start with a line the old one has
    write(@log, new_lines)
    # The file input may deliver the renamed file's lines under the old name for a while...
    ids << stamp(filter, @log, old_lines[2])
    # ...then under the new one.
    ids += old_lines.drop(3).map { |l| stamp(filter, "#{@log}.1", l) }
    assert_equal offsets(old_lines).map { |o| "node-a:#{old_key}:#{o}" }, ids
    new_key = key_of(@log)
    refute_equal old_key, new_key
    assert_equal offsets(new_lines).map { |o| "node-a:#{new_key}:#{o}" },
                 new_lines.map { |l| stamp(filter, @log, l) }
  end

  def test_a_deleted_file_is_read_back_through_the_handle_still_open
    lines = [line(1), line(2)]
    write(@log, lines)
    filter = build
    key = key_of(@log)
    stamp(filter, @log, lines[0])
    File.delete(@log)
    assert_equal "node-a:#{key}:#{lines[0].bytesize + 1}", stamp(filter, @log, lines[1])
  end

  def test_a_line_that_cannot_be_found_gets_an_id_of_its_own_every_time
    write(@log, [line(1)])
    filter = build
    ids = 2.times.map { stamp(filter, @log, line(5)) }
    assert(ids.all? { |id| id.start_with?("node-a:unverified:") })
    refute_equal ids[0], ids[1]
  end

  def test_the_same_inode_rewritten_from_the_start_is_another_file
    write(@log, [line(1), line(2)])
    filter = build
    before = stamp(filter, @log, line(1))
    File.open(@log, "r+") { |f| f.truncate(0) } # same inode, new first line
    write(@log, [line(3), line(1)], mode: "a")
    after = stamp(filter, @log, line(1))
    refute_equal before, after
    assert_equal "node-a:#{key_of(@log)}:#{line(3).bytesize + 1}", after
  end

  def test_a_line_across_the_scan_chunk_boundary_is_found
    chunk = build.constant(:BacalhauLogs)::EventIdentity::SCAN_CHUNK
    filler = line(0, request: "/" + "x" * 200)
    count = chunk / (filler.bytesize + 1)
    prefix = [filler] * count
    target = line(1, request: "/" + "y" * 300) # starts before the chunk's end, ends after it
    write(@log, prefix + [target])
    start = count * (filler.bytesize + 1)
    assert_operator start, :<, chunk
    assert_operator start + target.bytesize, :>, chunk
    assert_equal "node-a:#{key_of(@log)}:#{start}", stamp(build, @log, target)
  end

  def test_the_archive_line_is_the_original_with_one_key_added
    write(@log, [line(1)])
    ev = event(@log, line(1))
    build.filter(ev)
    archived = ev.get("[@metadata][archive_line]")
    assert_equal line(1).sub(/\}\z/, %(,"event_id":"#{ev.get('[@metadata][event_id]')}"})), archived
    assert_equal JSON.parse(line(1)).merge("event_id" => ev.get("[@metadata][event_id]")),
                 JSON.parse(archived)
    identity = build.constant(:BacalhauLogs)::EventIdentity
    assert_equal %({ "event_id":"n:k:0"} ), identity.archive_line("{ } ", "n:k:0")
    assert_equal %({"a":{"b":1},"event_id":"n:k:0"}), identity.archive_line(%({"a":{"b":1}}), "n:k:0")
    assert_nil identity.archive_line("[1,2]", "n:k:0")
  end

  def test_events_without_a_source_line_pass_untouched
    tick = LogStash::Event.new("tags" => ["_edge_metrics_tick"])
    assert_empty build.filter(tick)
    refute tick.cancelled?
    assert_nil tick.get("[@metadata][event_id]")
  end

  # Random files made mostly of a few repeated lines, read to a random point, then read again
  # from a random earlier point by a new filter (a restart), with a rotation half of the time:
  # every id that is not "unverified" must name the line's true file and offset.
  def test_random_replays_only_ever_give_a_line_its_own_offset
    random = Random.new(12)
    unverified = 0
    40.times do |round|
      path = File.join(@dir, "application-#{round}.log")
      lines = Array.new(random.rand(5..60)) { line(random.rand(3) * 1000) } # three contents
      lines << line(random.rand(4..9)) if random.rand(2).zero? # sometimes one unique line
      write(path, lines)
      key = key_of(path)
      truth = offsets(lines)
      crash = random.rand(1..lines.size)
      resume = random.rand(0...crash)
      first = build
      (0...crash).each { |i| check_id(stamp(first, path, lines[i]), key, truth[i]) }
      if random.rand(2).zero?
        File.rename(path, "#{path}.1")
        write(path, [line(round + 1)])
      end
      replay = build
      reading = File.exist?("#{path}.1") ? "#{path}.1" : path
      (resume...lines.size).each do |i|
        id = stamp(replay, reading, lines[i])
        unverified += 1 if id.include?(":unverified:")
        check_id(id, key, truth[i])
      end
    end
    assert_operator unverified, :>, 0, "the cases must include ambiguous restarts"
  end

  def check_id(id, key, offset)
    return if id.start_with?("node-a:unverified:")

    assert_equal "node-a:#{key}:#{offset}", id
  end

  # tests/logstash/data/replay_crash.ndjson: a crash after line 10 was delivered and a restart
  # that reads lines 6-13 again; the archive must hold 13 events, each with the fixture's id.
  def test_the_shared_replay_fixture
    records = File.readlines(REPLAY).map { |l| JSON.parse(l) }
    write(@log, records.map { |r| r["line"] })
    key = key_of(@log)
    expected = records.to_h { |r| [r["line_number"], r["event_id"].sub("FILE", key)] }
    archived = []
    %w[before_crash after_restart].each do |delivery| # a new filter: the restart loses its state
      filter = build
      records.select { |r| r["delivered"].include?(delivery) }.each do |r|
        ev = event(@log, r["line"])
        filter.filter(ev)
        assert_equal expected[r["line_number"]], ev.get("[@metadata][event_id]"), delivery
        archived << JSON.parse(ev.get("[@metadata][archive_line]"))
      end
    end
    assert_equal 18, archived.size
    assert_equal records.size, archived.map { |o| o["event_id"] }.uniq.size
    assert_equal 4, archived.uniq.size - 9, "identical lines stay distinct through their ids"
  end
end
