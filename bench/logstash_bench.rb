# Drives logstash/ruby/edge_metrics.rb over generated NDJSON with real Ruby and the Event
# stand-in, and prints JSON measurements. Run through bench/logstash_bench.py.
# Usage: ruby bench/logstash_bench.rb EVENTS.ndjson WINDOW_SECONDS
require "json"
require "time"
require_relative "../tests/logstash/ruby/logstash_stub"

path, window = ARGV
filter = ScriptFilter.new(File.expand_path("../logstash/ruby/edge_metrics.rb", __dir__),
                          "window_seconds" => window, "region" => "bench", "node" => "bench-node")

# No GeoLite2 database outside Logstash: a fixed IP -> city table stands in for the geoip
# filter so the top-10 geo documents are part of the measured output.
CITIES = Array.new(50) { |i| ["City#{i}", "C#{i % 20}", -60.0 + i * 2.5, -170.0 + i * 7.0] }

events = File.foreach(path).map do |line|
  data = JSON.parse(line)
  event = LogStash::Event.new(data.merge("@timestamp" => Time.iso8601(data["time_local"] + "Z")))
  city, country, lat, lon = CITIES[data["remote_addr"].hash % CITIES.size]
  event.set("[source][geo]", { "city_name" => city, "country_iso_code" => country,
                               "location" => { "lat" => lat, "lon" => lon } })
  [line.bytesize, event]
end

metrics = []
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
events.each { |_, event| metrics.concat(filter.filter(event)) }
elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
last = events.last[1].get("@timestamp").to_f
2.times do |i|
  tick = LogStash::Event.new("@timestamp" => Time.at(last + 3600 + i), "tags" => ["_edge_metrics_tick"])
  metrics.concat(filter.filter(tick))
end

# What the opensearch output sends: one bulk action line and one document line per metric.
bulk_bytes = metrics.sum do |metric|
  doc = metric.to_hash.merge("@timestamp" => metric.get("@timestamp").to_iso8601)
  action = { "index" => { "_index" => "bacalhau-logs-metrics-" + Time.at(metric.get("@timestamp").to_f).utc.strftime("%Y.%m.%d"),
                          "_id" => metric.get("[@metadata][document_id]") } }
  JSON.generate(action).bytesize + 1 + JSON.generate(doc).bytesize + 1
end

puts JSON.generate(
  "events" => events.size,
  "raw_bytes" => events.sum(&:first),
  "filter_seconds" => elapsed,
  "events_per_second" => events.size / elapsed,
  "metric_documents" => metrics.size,
  "windows" => metrics.count { |m| m.get("metric") == "summary" },
  "bulk_bytes" => bulk_bytes,
  "ruby" => RUBY_DESCRIPTION
)
