# Minitest suite for the crash safety of logstash/ruby/edge_metrics.rb (its `state_dir`
# journal): a Logstash restart neither loses the counts of open windows nor counts an event
# twice, and documents lost with their batch are emitted again under the same ids.
# The crash model is Logstash's own: a worker filters a batch, runs its outputs, then
# acknowledges it (logstash-core WorkerLoop#run, v8.19.20); after a crash the persisted queue
# delivers again every batch not acknowledged, and up to queue.checkpoint.acks events already
# acknowledged (logstash-core ackedqueue/Queue.java, v8.19.20).
# Run: ruby tests/logstash/ruby/test_edge_metrics_journal.rb (test_ruby_filters.py runs it).
require "json"
require "minitest/autorun"
require "tmpdir"
require_relative "logstash_stub"

JOURNAL_SCRIPT = File.expand_path("../../../logstash/ruby/edge_metrics.rb", __dir__)
REPLAY_FIXTURE = File.expand_path("../data/replay_crash.ndjson", __dir__)
START = Time.utc(2025, 4, 8, 21, 0, 0)

class EdgeMetricsJournalTest < Minitest::Test
  def setup
    @dir = Dir.mktmpdir("edge-metrics")
    @state = File.join(@dir, "state")
  end

  def teardown
    FileUtils.remove_entry(@dir)
  end

  # A Logstash start: a fresh script instance over the same state directory.
  def start(params = {})
    defaults = { "window_seconds" => "60", "node" => "node-a", "region" => "eu-1",
                 "state_dir" => @state }
    ScriptFilter.new(JOURNAL_SCRIPT, defaults.merge(params))
  end

  def access(offset, id, status: 200, ip: "10.0.0.1", request: "/", bytes: 10, agent: "curl/8")
    LogStash::Event.new(
      "@timestamp" => START + offset, "remote_addr" => ip, "status" => status, "request" => request,
      "body_bytes_sent" => bytes, "http_user_agent" => agent, "@metadata" => { "event_id" => id }
    )
  end

  # The event a stream entry stands for: its agent and address follow from its status and id.
  def streamed(offset, id, status)
    access(offset, id, status: status, ip: "10.0.0.#{status % 7}", agent: "agent-#{id.hash % 5}")
  end

  def tick(offset)
    LogStash::Event.new("@timestamp" => START + offset, "tags" => ["_edge_metrics_tick"])
  end

  # What OpenSearch holds after these metric events were indexed: one document per _id, as the
  # output serialises it.
  def index(events, into = {})
    events.each do |e|
      into[e.get("[@metadata][document_id]")] =
        e.to_hash.merge("@timestamp" => e.get("@timestamp").to_iso8601)
    end
    into
  end

  def requests(docs)
    docs.values.select { |d| d["metric"] == "summary" }.sum { |d| d["requests"] }
  end

  def test_a_restart_keeps_the_counts_of_open_windows
    first = start
    3.times { |i| assert_empty first.filter(access(i, "node-a:1-ab:#{i * 10}")) }
    second = start # the crash: nothing closed, nothing emitted
    out = second.filter(access(61, "node-a:1-ab:30"))
    assert_equal 3, requests(index(out))
    assert_equal 30, index(out).values.find { |d| d["metric"] == "summary" }["bytes_sent"]
  end

  def test_events_delivered_again_after_a_restart_count_once
    first = start
    [0, 10, 20].each { |offset| first.filter(access(1, "node-a:1-ab:#{offset}")) }
    second = start
    [10, 20, 30].each { |offset| second.filter(access(2, "node-a:1-ab:#{offset}")) }
    assert_equal 4, requests(index(second.filter(access(61, "node-a:1-ab:40"))))
  end

  def test_locations_survive_a_restart_though_the_journal_writes_each_once_per_window
    first = start
    2.times do |i|
      event = access(i, "node-a:1-ab:#{i}", ip: "198.51.100.7")
      event.set("[source][geo]", { "location" => { "lat" => 38.7, "lon" => -9.1 },
                                   "country_iso_code" => "PT", "city_name" => "Lisbon" })
      first.filter(event)
    end
    (segment,) = Dir.glob(File.join(@state, "open-*.jsonl"))
    assert_equal [["Lisbon, PT", "PT", "Lisbon", 38.7, -9.1], ["Lisbon, PT"]],
                 File.readlines(segment).map { |l| JSON.parse(l).last }
    geo = index(start.filter(access(61, "node-a:1-ab:2"))).values.find { |d| d["metric"] == "top_geo" }
    assert_equal ["Lisbon, PT", 2, { "lat" => 38.7, "lon" => -9.1 }, "PT", "Lisbon"],
                 geo.values_at("key", "count", "location", "country", "city")
  end

  def test_identical_requests_at_different_offsets_are_all_counted
    filter = start
    5.times { |i| filter.filter(access(1, "node-a:1-ab:#{i * 230}", status: 429, ip: "203.0.113.9")) }
    docs = index(filter.filter(access(61, "node-a:1-ab:9999")))
    assert_equal 5, requests(docs)
    throttled = docs.values.find { |d| d["metric"] == "throttled_ip" }
    assert_equal ["203.0.113.9", 5], [throttled["key"], throttled["count"]]
  end

  def test_each_source_file_keeps_its_own_offsets
    filter = start
    filter.filter(access(1, "node-a:1-ab:500"))
    filter.filter(access(1, "node-a:2-cd:0")) # a new file starts at offset 0
    filter.filter(access(1, "node-a:1-ab:400")) # an older offset of the first file: a replay
    assert_equal 2, requests(index(filter.filter(access(61, "node-a:2-cd:100"))))
  end

  def test_documents_lost_with_their_batch_are_emitted_again_with_the_same_ids
    first = start
    2.times { |i| first.filter(access(i, "node-a:1-ab:#{i}")) }
    lost = first.filter(access(61, "node-a:1-ab:2")) # the crash comes before the output ran
    refute_empty lost
    second = start
    again = second.filter(tick(70))
    assert_equal index(lost), index(again), "same ids, same documents"
    assert_empty second.filter(tick(75)), "emitted once per start"
    # The batch was not acknowledged: its event comes back, and is not counted twice.
    second.filter(access(61, "node-a:1-ab:2"))
    assert_equal 1, requests(index(second.filter(access(130, "node-a:1-ab:3"))))
  end

  def test_sealed_documents_are_deleted_after_the_retention
    now = 1000.0
    filter = start
    aggregator = filter.constant(:BacalhauLogs)::Aggregator.new(
      { "window_seconds" => "60", "node" => "node-a", "state_dir" => @state,
        "sealed_retention_seconds" => "30" }, nil, clock: -> { now }
    )
    aggregator.on_access_event(access(1, "node-a:1-ab:0"))
    aggregator.on_access_event(access(61, "node-a:1-ab:1"))
    assert_equal 1, Dir.glob(File.join(@state, "sealed-*.json")).size
    now += 29
    aggregator.on_tick(tick(90))
    assert_equal 1, Dir.glob(File.join(@state, "sealed-*.json")).size
    now += 1
    aggregator.on_tick(tick(95))
    assert_empty Dir.glob(File.join(@state, "sealed-*.json"))
    assert_equal 1, Dir.glob(File.join(@state, "open-*.jsonl")).size, "the second window is open"
  end

  def test_an_id_without_an_offset_counts_once_and_a_different_one_counts_again
    first = start
    first.filter(access(1, "node-a:unverified:0b8f6f1e-4c1d-4a8e-9d3c-2f1e0a9b7c6d"))
    first.filter(access(1, "node-a:unverified:22222222-4c1d-4a8e-9d3c-2f1e0a9b7c6d"))
    second = start
    second.filter(access(1, "node-a:unverified:0b8f6f1e-4c1d-4a8e-9d3c-2f1e0a9b7c6d"))
    second.filter(access(1, "node-a:unverified:11111111-4c1d-4a8e-9d3c-2f1e0a9b7c6d"))
    assert_equal 3, requests(index(second.filter(access(61, "node-a:1-ab:0"))))
  end

  def test_a_torn_last_record_is_skipped_and_reported
    first = start
    2.times { |i| first.filter(access(1, "node-a:1-ab:#{i}")) }
    (segment,) = Dir.glob(File.join(@state, "open-*.jsonl"))
    File.open(segment, "a") { |f| f.write('["node-a:1-ab:2",200,1') }
    second = start
    (level, message), = second.logger.messages
    assert_equal :warn, level
    assert_includes message, File.basename(segment)
    second.filter(access(2, "node-a:1-ab:2")) # the torn event, from the queue again
    third = start # appended after the cut, so read back whole
    assert_empty third.logger.messages
    assert_equal 3, requests(index(third.filter(access(61, "node-a:1-ab:3"))))
  end

  def test_a_failing_journal_is_reported_once_and_counting_goes_on
    filter = start
    filter.filter(access(1, "node-a:1-ab:0"))
    FileUtils.remove_entry(@state)
    File.write(@state, "not a directory") # the next window's segment cannot be created
    filter.filter(access(61, "node-a:1-ab:1"))
    filter.filter(access(62, "node-a:1-ab:2"))
    assert_equal 2, requests(index(filter.filter(access(121, "node-a:1-ab:3"))))
    errors = filter.logger.messages.select { |level, _| level == :error }
    assert_equal 1, errors.size
    assert_includes errors.first[1], "without crash safety"
  end

  def test_without_a_state_dir_nothing_is_written
    filter = ScriptFilter.new(JOURNAL_SCRIPT, "window_seconds" => "60", "node" => "node-a")
    filter.filter(access(1, "node-a:1-ab:0"))
    filter.filter(access(1, "node-a:1-ab:0"))
    assert_equal 1, requests(index(filter.filter(access(61, "node-a:1-ab:1"))))
    assert_empty Dir.children(@dir)
  end

  # tests/logstash/data/replay_crash.ndjson: 13 lines, identical requests among them, lines
  # 6-10 delivered before a crash and again after the restart. The node folder and the archive
  # count 13 (tests/agent/test_agent_identity.py); so must the metrics.
  def test_the_shared_replay_fixture
    records = File.readlines(REPLAY_FIXTURE).map { |l| JSON.parse(l) }
    docs = {}
    %w[before_crash after_restart].each do |delivery|
      filter = start
      records.select { |r| r["delivered"].include?(delivery) }.each do |r|
        line = JSON.parse(r["line"])
        event = LogStash::Event.new(line.merge("@timestamp" => Time.iso8601("#{line['time_local']}Z"),
                                               "@metadata" => { "event_id" => r["event_id"] }))
        index(filter.filter(event), docs)
      end
      next if delivery == "before_crash" # no tick: the crash comes first

      last = Time.iso8601("#{JSON.parse(records.last['line'])['time_local']}Z") - START
      index(filter.filter(tick(last + 3600)), docs)
      index(filter.filter(tick(last + 3605)), docs)
    end
    assert_equal 18, records.sum { |r| r["delivered"].size }, "the fixture replays 5 lines"
    assert_equal records.size, requests(docs)
  end

  # Logstash's crash model, at random: batches, a crash before or after a batch's outputs, the
  # queue delivering the unacknowledged batch and some acknowledged events again, ticks. What
  # OpenSearch ends up with must equal a crash-free count of the distinct events, window by window.
  def test_random_crashes_and_replays_never_lose_or_double_count
    40.times { |seed| check_random_run(Random.new(seed), seed) }
  end

  def check_random_run(random, seed)
    FileUtils.rm_rf(@state)
    events = random_stream(random)
    expected = Hash.new { |h, k| h[k] = Hash.new(0) }
    events.each do |offset, id, status| # every id is distinct: what the node wrote
      window = START.to_i + (offset / 60).floor * 60
      expected[window][:requests] += 1
      expected[window][status] += 1
      expected[window][streamed(offset, id, status).get("http_user_agent")] += 1
    end
    docs = {}
    filter = start
    acked = 0
    position = 0
    clock = 0
    while position < events.size
      batch = events[position, 1 + random.rand(8)]
      out = []
      crash_at = random.rand < 0.15 ? random.rand(batch.size + 1) : nil
      batch.each_with_index do |(offset, id, status), i|
        break if crash_at == i

        clock = [clock, offset].max
        out.concat(filter.filter(streamed(offset, id, status)))
      end
      out.concat(filter.filter(tick(clock + random.rand(90)))) if random.rand < 0.2 && crash_at.nil?
      if crash_at
        index(out, docs) if random.rand < 0.5 && crash_at == batch.size # outputs ran, no ack
        filter = start
        # Redelivered: the batch, and up to 10 acknowledged events before it.
        position = [acked - random.rand(11), 0].max
        position = acked if position > acked
        replay = events[position...acked]
        replay.each do |offset, id, status|
          index(filter.filter(streamed(offset, id, status)), docs)
        end
        position = acked
        next
      end
      index(out, docs)
      position += batch.size
      acked = position
    end
    index(filter.filter(tick(clock + 3600)), docs)
    index(filter.filter(tick(clock + 3605)), docs)
    actual = Hash.new { |h, k| h[k] = Hash.new(0) }
    docs.each_value do |doc|
      window = Time.iso8601(doc["window_start"]).to_i
      case doc["metric"]
      when "summary" then actual[window][:requests] += doc["requests"]
      when "status" then actual[window][doc["status"]] += doc["count"]
      when "top_user_agent" then actual[window][doc["key"]] += doc["count"] # 5 agents, top 10
      end
    end
    assert_equal expected, actual, "seed #{seed}"
  end

  # Two files written in order, identical requests among them, timestamps mostly rising with
  # some events late by up to a window.
  def random_stream(random)
    offsets = { "node-a:11-aa" => 0, "node-a:12-bb" => 0 }
    time = 0.0
    Array.new(60 + random.rand(120)) do
      source = offsets.keys.sample(random: random)
      offsets[source] += 1 + random.rand(300)
      time += random.rand * 4
      late = random.rand < 0.1 ? random.rand * 60 : 0
      [[time - late, 0].max, "#{source}:#{offsets[source]}", [200, 200, 404, 429].sample(random: random)]
    end
  end
end
