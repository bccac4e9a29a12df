# Edge aggregation for the metrics pipeline (logstash-filter-ruby, `path =>` script API).
#
# Access-log events go into per-window counters; closed windows come out as small metric
# documents (one per status, one per top-N entry, one summary). A window closes when
#   * an event of a later window arrives (the event-time watermark passed its end), or
#   * a tick arrives after the window's end and the window got no event since the previous
#     tick, so an idle node still reports its last window. Ticks come from the pipeline's
#     heartbeat input because the ruby filter has no flush hook of its own.
# The pipeline runs with one worker, so the counters need no lock.
require "securerandom"
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

  class Window
    attr_reader :start, :counts, :bytes_sent, :requests
    attr_accessor :touched

    def initialize(start)
      @start = start
      @requests = 0
      @bytes_sent = 0
      @touched = true
      @counts = Hash.new { |h, k| h[k] = Hash.new(0) }
      @locations = {}
    end

    def add(fields)
      @requests += 1
      @bytes_sent += fields[:bytes]
      @touched = true
      status = fields[:status]
      @counts[:status][status] += 1 if status
      increment(:top_ip, fields[:ip])
      increment(:top_user_agent, fields[:user_agent])
      increment(:top_page, fields[:page])
      increment(:gone_page, fields[:page]) if status == 404
      increment(:unauthorized_ip, fields[:ip]) if status == 403
      increment(:throttled_ip, fields[:ip]) if status == 429
      geo = fields[:geo]
      return unless geo

      increment(:top_geo, geo[:key])
      @locations[geo[:key]] ||= geo
    end

    def location(key)
      @locations[key]
    end

    private

    def increment(list, key)
      @counts[list][key] += 1 unless key.nil? || key.empty?
    end
  end

  class Aggregator
    LISTS = %i[top_ip top_geo top_user_agent top_page gone_page unauthorized_ip throttled_ip].freeze

    def initialize(params)
      @window_seconds = positive_int(params, "window_seconds", 60)
      @top_n = positive_int(params, "top_n", 10)
      @min_count = positive_int(params, "min_count", 1)
      @max_path_depth = positive_int(params, "max_path_depth", 3)
      @region = params.fetch("region", "").to_s
      node = params.fetch("node", "").to_s
      @node = node.empty? ? Socket.gethostname : node
      @windows = {}
      @watermark = nil
    end

    # Returns the metric events of every window this event closed.
    def on_access_event(event)
      time = event.get("@timestamp").to_f
      start = (time / @window_seconds).floor * @window_seconds
      (@windows[start] ||= Window.new(start)).add(fields_of(event))
      @watermark = time if @watermark.nil? || time > @watermark
      close_windows { |window| window.start + @window_seconds <= @watermark }
    end

    def on_tick(event)
      now = event.get("@timestamp").to_f
      close_windows do |window|
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

    def fields_of(event)
      {
        status: status_of(event.get("status")),
        bytes: event.get("body_bytes_sent").to_i,
        ip: event.get("remote_addr")&.to_s,
        user_agent: event.get("http_user_agent")&.to_s&.slice(0, MAX_KEY_LENGTH),
        page: PathNormalizer.normalize(event.get("request"), @max_path_depth),
        geo: geo_of(event),
      }
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
      { key: key, country: country, city: city, lat: location["lat"], lon: location["lon"] }
    end

    def close_windows
      closed = @windows.values.select { |window| yield(window) }
      closed.sort_by(&:start).flat_map do |window|
        @windows.delete(window.start)
        documents_for(window)
      end
    end

    def documents_for(window)
      # A flush id keeps document ids stable across bulk retries of the same flush, while a
      # second partial flush of the same window (late events) gets ids of its own.
      flush_id = SecureRandom.hex(6)
      base = base_fields(window)
      docs = [base.merge("metric" => "summary", "requests" => window.requests,
                         "bytes_sent" => window.bytes_sent)]
      window.counts[:status].sort.each do |status, count|
        docs << base.merge("metric" => "status", "key" => status.to_s, "status" => status,
                           "count" => count)
      end
      LISTS.each { |list| docs.concat(top_entries(window, list, base)) }
      docs.each_with_index.map { |doc, i| new_event(doc, "#{flush_id}-#{i}") }
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
      fields = { "location" => { "lat" => geo[:lat], "lon" => geo[:lon] } }
      fields["country"] = geo[:country] unless geo[:country].empty?
      fields["city"] = geo[:city] unless geo[:city].empty?
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
      event.set("[@metadata][document_id]", "#{@node}-#{id}")
      event
    end
  end
end

def register(params)
  @aggregator = BacalhauLogs::Aggregator.new(params)
end

# Returns only metric events: this pipeline's copy of an access event (or a tick) has served
# its purpose once counted, and the archive pipeline has its own copy.
def filter(event)
  tags = event.get("tags") || []
  return @aggregator.on_tick(event) if tags.include?(BacalhauLogs::TICK_TAG)

  @aggregator.on_access_event(event)
end
