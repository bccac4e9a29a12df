# Edge aggregation for the metrics pipeline (logstash-filter-ruby, `path =>` script API).
#
# Access-log events go into per-window counters; closed windows come out as small metric
# documents (one per status, one per top-N entry, one summary). A window closes when
#   * an event of a later window arrives (the event-time watermark passed its end), or
#   * a tick arrives after the window's end and the window got no event since the previous
#     tick, so an idle node still reports its last window. Ticks come from the pipeline's
#     heartbeat input because the ruby filter has no flush hook of its own.
# The pipeline runs with one worker, so the counters need no lock.
#
# Counted once, across crashes (docs/contracts.md, "Delivery guarantees"). Logstash acknowledges
# a batch to the persisted queue as soon as its filters and outputs ran (logstash-core
# WorkerLoop#run, v8.19.20), long before the window an event was counted into is closed and
# shipped. With `state_dir` set, a journal makes that safe:
#   * every counted event is appended to its window's open segment with one write(2), so a
#     restarted Logstash rebuilds the open windows (a crash of Logstash loses nothing; a crash
#     of the machine can lose what the OS had not written back, as the queue itself can);
#   * a closed window's documents are saved before they are emitted, and emitted again with the
#     same document ids after a restart: OpenSearch replaces a document with the same _id, so
#     a second delivery changes nothing and a lost one is made good;
#   * an event delivered again (the queue replays what was not acknowledged, the file input
#     re-reads after its last sincedb write) is recognised by its event_id: one ordered worker
#     in the ingest pipeline and one worker here keep each file's offsets increasing, so an
#     offset at or below the highest one counted from that file is a replay. Ids without an
#     offset (`<node>:unverified:<uuid>`) are remembered whole while their window can replay.
require "fileutils"
require "json"
require "securerandom"
require "set"
require "socket"
require "time"

module BacalhauLogs
  TICK_TAG = "_edge_metrics_tick".freeze
  METRIC_TAG = "bacalhau_metrics".freeze
  MAX_KEY_LENGTH = 256 # user agents can be arbitrarily long; keywords should not be

  module PathNormalizer
    NUMERIC_ID = /\A\d+\z/.freeze
    UUID = /\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/.freeze

    # "/image/64456/productModel/200x200?size=l" -> "/image/:id/productModel" (depth 3)
    def self.normalize(request, max_depth)
      path = request.to_s.split(/[?#]/, 2).first.to_s
      segments = path.split("/").reject(&:empty?).first(max_depth)
      "/" + segments.map { |s| s.match?(NUMERIC_ID) || s.match?(UUID) ? ":id" : s }.join("/")
    end
  end

  # What one event adds to a window: [event_id, status, bytes, ip, user_agent, page, geo],
  # geo = [key, country, city, lat, lon]; the journal's records keep this order.
  Contribution = Struct.new(:event_id, :status, :bytes, :ip, :user_agent, :page, :geo) do
    def self.from_record(record)
      id, status, bytes, ip, user_agent, page, geo = record
      raise ArgumentError, "not a journal record" unless bytes.is_a?(Integer) && page.is_a?(String)

      new(id, status, bytes, ip, user_agent, page, geo)
    end
  end

  class Window
    attr_reader :start, :flush_id, :counts, :bytes_sent, :requests, :unverified_ids
    attr_accessor :touched

    # The flush id names this window's documents: a second, partial flush of the same window
    # (late events) gets documents of its own instead of replacing the first one's.
    def initialize(start, flush_id = SecureRandom.hex(6))
      @start = start
      @flush_id = flush_id
      @requests = 0
      @bytes_sent = 0
      @touched = true
      @counts = Hash.new { |h, k| h[k] = Hash.new(0) }
      @locations = {}
      @unverified_ids = []
    end

    def add(contribution)
      @requests += 1
      @bytes_sent += contribution.bytes
      @touched = true
      status = contribution.status
      @counts[:status][status] += 1 if status
      ip = contribution.ip
      page = contribution.page
      increment(:top_ip, ip)
      increment(:top_user_agent, contribution.user_agent)
      increment(:top_page, page)
      increment(:gone_page, page) if status == 404
      increment(:unauthorized_ip, ip) if status == 403
      increment(:throttled_ip, ip) if status == 429
      geo = contribution.geo
      return unless geo

      increment(:top_geo, geo[0])
      @locations[geo[0]] ||= geo
    end

    def location(key)
      @locations[key]
    end

    private

    def increment(list, key)
      @counts[list][key] += 1 unless key.nil? || key.empty?
    end
  end

  # Which deliveries were counted already (see the header): per source file the highest offset,
  # and ids without an offset one by one.
  class Deliveries
    # "<node>:<inode>-<fingerprint>:<offset>" (docs/contracts.md, "Event identity").
    OFFSET = /\A(?:0|[1-9]\d{0,17})\z/.freeze

    attr_reader :offsets

    def initialize
      @offsets = {}
      @unverified = Set.new
    end

    # nil for a replay; otherwise the event's first delivery, now remembered: :verified (an
    # offset), :unverified (an id without one) or :anonymous (no id: foreign input, counted).
    def admit(event_id)
      return :anonymous if event_id.nil? || event_id.empty?

      source, separator, offset = event_id.rpartition(":")
      if separator.empty? || !offset.match?(OFFSET)
        return @unverified.add?(event_id) ? :unverified : nil
      end

      offset = offset.to_i
      last = @offsets[source]
      return nil if last && offset <= last

      @offsets[source] = offset
      :verified
    end

    def restore_offsets(offsets)
      offsets.each do |source, offset|
        @offsets[source] = offset if @offsets[source].nil? || offset > @offsets[source]
      end
    end

    def forget_unverified(ids)
      ids.each { |id| @unverified.delete(id) }
    end

    def forget_sources(sources)
      sources.each { |source| @offsets.delete(source) }
    end
  end

  # The files under state_dir (see the header):
  #   open-<window start>-<flush id>.jsonl  one journal record per counted event
  #   sealed-<window start>-<flush id>.json the documents of a closed window, kept `retention`
  #                                         seconds after they were emitted, then deleted
  #   sources.json                          the highest offset counted per source file
  class Journal
    OPEN = /\Aopen-(\d+)-(\h{12})\.jsonl\z/.freeze
    SEALED = /\Asealed-(\d+)-(\h{12})\.json\z/.freeze
    SOURCES = "sources.json".freeze

    Recovered = Struct.new(:segments, :documents, :offsets, :unverified, :damaged)
    Segment = Struct.new(:io, :agents)

    def initialize(dir, retention:, source_ttl:)
      @dir = dir
      @retention = retention
      @source_ttl = source_ttl
      FileUtils.mkdir_p(dir)
      @segments = {}
      @sealed = {}
      @source_seen = {}
      @sources_written = {}
    end

    # What a previous run left, read once at register: open segments' contributions by
    # [start, flush id], sealed documents to emit again, offsets and unverified ids to skip.
    def recover(now)
      recovered = Recovered.new({}, [], {}, [], [])
      read_sources(recovered, now)
      names = Dir.children(@dir).sort
      sealed_keys = names.filter_map { |name| SEALED.match(name)&.captures }
      names.each do |name|
        if (match = SEALED.match(name))
          read_sealed(name, recovered, now)
        elsif (match = OPEN.match(name))
          if sealed_keys.include?(match.captures)
            # Sealed, and the crash came before the segment was deleted: the documents stand.
            File.delete(path(name))
          else
            read_segment(name, [match[1].to_i, match[2]], recovered)
          end
        end
      end
      recovered
    end

    # One record per event, one write(2). Two fields are written in full only once per segment,
    # which keeps the record short (its JSON encoding is most of the journal's cost): a user
    # agent, then by its index in the order of first appearance; a location (the window keeps
    # the first per geo key), then as [key].
    def append(window, contribution, known_location)
      key = [window.start, window.flush_id]
      segment = @segments[key] ||= Segment.new(File.open(path(open_name(*key)), "a"), {})
      record = contribution.to_a
      agent = record[4]
      if agent
        index = segment.agents[agent]
        if index
          record[4] = index
        else
          segment.agents[agent] = segment.agents.size
        end
      end
      record[6] = [record[6][0]] if known_location
      # Array#to_json: the json library's generator, without JSON.generate's state set-up.
      segment.io.syswrite(record.to_json << "\n")
    end

    # Saves a closed window's documents (with their ids) before they are emitted, records the
    # offsets counted so far, then drops the window's segment.
    def seal(window, documents, offsets, now)
      key = [window.start, window.flush_id]
      name = sealed_name(*key)
      write_atomically(name, JSON.generate("documents" => documents,
                                           "unverified" => window.unverified_ids))
      @sealed[name] = [now + @retention, window.unverified_ids]
      write_sources(offsets, now)
      @segments.delete(key)&.io&.close
      segment = path(open_name(*key))
      File.delete(segment) if File.exist?(segment)
    end

    # Deletes sealed documents older than the retention; returns the unverified ids they
    # covered, which can no longer be replayed into a window.
    def expire(now)
      expired = @sealed.select { |_, (deadline, _)| deadline <= now }
      expired.each_key do |name|
        @sealed.delete(name)
        File.delete(path(name)) if File.exist?(path(name))
      end
      expired.values.flat_map { |_, ids| ids }
    end

    # Sources whose offset has not moved for source_ttl seconds (rotated away long ago).
    def stale_sources(now)
      @source_seen.select { |_, seen| seen + @source_ttl <= now }.keys
    end

    private

    def path(name)
      File.join(@dir, name)
    end

    def open_name(start, flush_id)
      "open-#{start}-#{flush_id}.jsonl"
    end

    def sealed_name(start, flush_id)
      "sealed-#{start}-#{flush_id}.json"
    end

    def write_atomically(name, text)
      temporary = path(".#{name}.tmp")
      File.write(temporary, text)
      File.rename(temporary, path(name))
    end

    def write_sources(offsets, now)
      offsets.each do |source, offset|
        @source_seen[source] = now unless @sources_written[source] == offset
      end
      @source_seen.select! { |source, _| offsets.key?(source) }
      @sources_written = offsets.dup
      document = offsets.to_h { |source, offset| [source, [offset, @source_seen[source]]] }
      write_atomically(SOURCES, JSON.generate(document))
    end

    def read_sources(recovered, now)
      return unless File.exist?(path(SOURCES))

      JSON.parse(File.read(path(SOURCES))).each do |source, (offset, seen)|
        next unless offset.is_a?(Integer)

        recovered.offsets[source] = offset
        @sources_written[source] = offset
        @source_seen[source] = seen.is_a?(Numeric) ? seen : now
      end
    rescue JSON::ParserError
      recovered.damaged << SOURCES
    end

    # A write cut short by the crash leaves a last line without its newline; the event it held
    # was not acknowledged and comes back from the queue. Cut it off, or the next record
    # appended would be glued to it.
    def drop_torn_tail(name, recovered)
      size = File.size(path(name))
      return if size.zero?

      File.open(path(name), "r+") do |file|
        file.seek(-1, IO::SEEK_END)
        return if file.read(1) == "\n"

        file.rewind
        complete = file.read.rindex("\n")
        file.truncate(complete.nil? ? 0 : complete + 1)
      end
      recovered.damaged << name
    end

    def read_sealed(name, recovered, now)
      sealed = JSON.parse(File.read(path(name)))
      recovered.documents.concat(sealed.fetch("documents"))
      recovered.unverified.concat(sealed.fetch("unverified"))
      # Emitted again now: kept for the whole retention from this run's emission.
      @sealed[name] = [now + @retention, sealed.fetch("unverified")]
    rescue JSON::ParserError, KeyError, TypeError
      recovered.damaged << name
    end

    def read_segment(name, key, recovered)
      drop_torn_tail(name, recovered)
      contributions = []
      agents = []
      File.foreach(path(name)) do |line|
        record = JSON.parse(line)
        agent = record[4]
        if agent.is_a?(Integer)
          record[4] = agents.fetch(agent)
        elsif agent.is_a?(String)
          agents << agent
        end
        contributions << Contribution.from_record(record)
      rescue JSON::ParserError, ArgumentError, TypeError, IndexError
        recovered.damaged << name
      end
      recovered.segments[key] = contributions
      @segments[key] = Segment.new(File.open(path(name), "a"), agents.each_with_index.to_h)
    end
  end

  class Aggregator
    LISTS = %i[top_ip top_geo top_user_agent top_page gone_page unauthorized_ip throttled_ip].freeze

    def initialize(params, logger = nil, clock: -> { Time.now.to_f })
      @window_seconds = positive_int(params, "window_seconds", 60)
      @top_n = positive_int(params, "top_n", 10)
      @min_count = positive_int(params, "min_count", 1)
      @max_path_depth = positive_int(params, "max_path_depth", 3)
      @region = params.fetch("region", "").to_s
      node = params.fetch("node", "").to_s
      @node = node.empty? ? Socket.gethostname : node
      @logger = logger
      @clock = clock
      @windows = {}
      @watermark = nil
      @deliveries = Deliveries.new
      @pending = []
      state_dir = params.fetch("state_dir", "").to_s
      @journal = state_dir.empty? ? nil : open_journal(state_dir, params)
    end

    # Returns the metric events of every window this event closed (and, on the first call
    # after a restart, the documents of windows closed before it, emitted again).
    def on_access_event(event)
      event_id = event.get("[@metadata][event_id]")
      delivery = @deliveries.admit(event_id)
      return take_pending if delivery.nil?

      time = event.get("@timestamp").to_f
      start = (time / @window_seconds).floor * @window_seconds
      window = (@windows[start] ||= Window.new(start))
      contribution = contribution_of(event, event_id)
      geo = contribution.geo
      known_location = !geo.nil? && !window.location(geo[0]).nil?
      window.add(contribution)
      window.unverified_ids << event_id if delivery == :unverified
      journal { |journal| journal.append(window, contribution, known_location) }
      pending = take_pending
      return pending unless @watermark.nil? || time > @watermark

      @watermark = time
      # Most events move the watermark inside the current window: nothing can close.
      return pending if @watermark < @windows.each_key.min + @window_seconds

      pending + close_windows { |w| w.start + @window_seconds <= @watermark }
    end

    def on_tick(event)
      now = event.get("@timestamp").to_f
      journal do |journal|
        wall = @clock.call
        @deliveries.forget_unverified(journal.expire(wall))
        @deliveries.forget_sources(journal.stale_sources(wall))
      end
      take_pending + close_windows do |window|
        idle = !window.touched
        window.touched = false
        idle && window.start + @window_seconds <= now
      end
    end

    private

    def positive_int(params, name, default)
      raw = params.fetch(name, default).to_s
      value = raw.empty? ? default : Integer(raw, 10)
      raise ArgumentError, "#{name} must be >= 1, got #{raw}" if value < 1

      value
    end

    def open_journal(state_dir, params)
      journal = Journal.new(state_dir,
                            retention: positive_int(params, "sealed_retention_seconds", 600),
                            source_ttl: positive_int(params, "source_ttl_seconds", 7 * 86_400))
      recovered = journal.recover(@clock.call)
      unless recovered.damaged.empty?
        log(:warn, "edge metrics: skipped unreadable journal entries in #{state_dir}: " \
                   "#{recovered.damaged.uniq.join(', ')}")
      end
      recovered.unverified.each { |id| @deliveries.admit(id) }
      recovered.segments.each do |(start, flush_id), contributions|
        window = @windows[start] = Window.new(start, flush_id)
        contributions.each do |contribution|
          delivery = @deliveries.admit(contribution.event_id)
          window.add(contribution)
          window.unverified_ids << contribution.event_id if delivery == :unverified
        end
      end
      # After the segments: sources.json may be ahead of them (written at a later seal).
      @deliveries.restore_offsets(recovered.offsets)
      @pending = recovered.documents.map { |doc| new_event(doc.reject { |k, _| k == "_id" }, doc["_id"]) }
      journal
    end

    # Journal failures (a full or read-only disk) must not stop the counting: the metrics go
    # on in memory, without the crash safety, and the operator is told once.
    def journal
      return unless @journal

      yield @journal
    rescue SystemCallError, IOError => error
      log(:error, "edge metrics: journal in state_dir failed (#{error.message}); counting " \
                  "continues in memory, without crash safety, until Logstash restarts")
      @journal = nil
    end

    def log(level, message)
      @logger&.public_send(level, message)
    end

    def take_pending
      return [] if @pending.empty?

      pending = @pending
      @pending = []
      pending
    end

    def contribution_of(event, event_id)
      Contribution.new(
        event_id,
        status_of(event.get("status")),
        event.get("body_bytes_sent").to_i,
        event.get("remote_addr")&.to_s,
        event.get("http_user_agent")&.to_s&.slice(0, MAX_KEY_LENGTH),
        PathNormalizer.normalize(event.get("request"), @max_path_depth),
        geo_of(event)
      )
    end

    # The JSON codec yields integers; a hand-edited or foreign line may carry "404".
    def status_of(raw)
      return raw if raw.is_a?(Integer)
      return raw.to_i if raw.is_a?(String) && raw.match?(/\A\d{3}\z/)

      nil
    end

    def geo_of(event)
      location = event.get("[source][geo][location]")
      return nil unless location.is_a?(Hash) && location["lat"] && location["lon"]

      country = event.get("[source][geo][country_iso_code]").to_s
      city = event.get("[source][geo][city_name]").to_s
      key = [city, country].reject(&:empty?).join(", ")
      key = format("%.2f,%.2f", location["lat"], location["lon"]) if key.empty?
      [key, country, city, location["lat"], location["lon"]]
    end

    def close_windows
      closed = @windows.values.select { |window| yield(window) }
      closed.sort_by(&:start).flat_map do |window|
        @windows.delete(window.start)
        documents = documents_for(window)
        journal { |journal| journal.seal(window, documents, @deliveries.offsets, @clock.call) }
        documents.map { |doc| new_event(doc.reject { |k, _| k == "_id" }, doc["_id"]) }
      end
    end

    # Plain hashes with their document id under "_id": what the journal saves and what
    # becomes events. The same window and flush id always give the same documents and ids.
    def documents_for(window)
      base = base_fields(window)
      docs = [base.merge("metric" => "summary", "requests" => window.requests,
                         "bytes_sent" => window.bytes_sent)]
      window.counts[:status].sort.each do |status, count|
        docs << base.merge("metric" => "status", "key" => status.to_s, "status" => status,
                           "count" => count)
      end
      LISTS.each { |list| docs.concat(top_entries(window, list, base)) }
      docs.each_with_index.map { |doc, i| doc.merge("_id" => "#{@node}-#{window.flush_id}-#{i}") }
    end

    def top_entries(window, list, base)
      ranked = window.counts[list].select { |_, count| count >= @min_count }
                                  .sort_by { |key, count| [-count, key] }
                                  .first(@top_n)
      ranked.each_with_index.map do |(key, count), i|
        doc = base.merge("metric" => list.to_s, "key" => key, "count" => count, "rank" => i + 1)
        geo = list == :top_geo ? window.location(key) : nil
        doc.merge!(geo_fields(geo)) if geo
        doc
      end
    end

    def geo_fields(geo)
      _key, country, city, lat, lon = geo
      fields = { "location" => { "lat" => lat, "lon" => lon } }
      fields["country"] = country unless country.empty?
      fields["city"] = city unless city.empty?
      fields
    end

    def base_fields(window)
      start = Time.at(window.start).utc
      finish = Time.at(window.start + @window_seconds).utc
      {
        "@timestamp" => start.iso8601,
        "window_start" => start.iso8601,
        "window_end" => finish.iso8601,
        "window_seconds" => @window_seconds,
        "host" => { "name" => @node },
        "region" => @region,
        "tags" => [METRIC_TAG],
      }
    end

    def new_event(doc, id)
      event = LogStash::Event.new(doc)
      event.set("[@metadata][document_id]", id)
      event
    end
  end
end

def register(params)
  @aggregator = BacalhauLogs::Aggregator.new(params, logger)
end

# Returns only metric events: this pipeline's copy of an access event (or a tick) has served
# its purpose once counted, and the archive pipeline has its own copy.
def filter(event)
  tags = event.get("tags") || []
  return @aggregator.on_tick(event) if tags.include?(BacalhauLogs::TICK_TAG)

  @aggregator.on_access_event(event)
end
