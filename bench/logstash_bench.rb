# Drives logstash/ruby/edge_metrics.rb over generated NDJSON with the Event stand-in, under MRI
# or JRuby, and prints JSON measurements. Run through bench/logstash_bench.py.
# Usage: ruby bench/logstash_bench.rb EVENTS.ndjson WINDOW_SECONDS [journal|memory]
# `journal` gives the aggregation a state_dir (a temporary directory on this machine's disk), as
# logstash/pipeline/metrics.conf does; `memory` leaves it out, to measure what the journal costs.
require "json"
require "time"
require "tmpdir"
require_relative "../tests/logstash/ruby/logstash_stub"

path, window, mode = ARGV
mode ||= "journal"
raise ArgumentError, "mode must be journal or memory, got #{mode}" unless %w[journal memory].include?(mode)

script = File.expand_path("../logstash/ruby/edge_metrics.rb", __dir__)
state_dir = mode == "journal" ? Dir.mktmpdir("edge-metrics-bench") : ""
at_exit { FileUtils.remove_entry(state_dir) unless state_dir.empty? }
filter = ScriptFilter.new(script, "window_seconds" => window, "region" => "bench", "node" => "bench-node",
                                  "state_dir" => state_dir)

# CPU time of this (the worker's) thread: on a shared machine wall-clock time mostly measures
# the neighbours. JRuby has no CLOCK_THREAD_CPUTIME_ID; the JVM's thread bean gives the same.
if RUBY_ENGINE == "jruby"
  THREADS = java.lang.management.ManagementFactory.getThreadMXBean
  def thread_cpu_seconds = THREADS.getCurrentThreadCpuTime / 1e9
else
  def thread_cpu_seconds = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)
end

# No GeoLite2 database here, so no real geoip filter: a stand-in does, inside the timed loop,
# the part of its work that lands on this worker's events: a per-address lookup and the ECS
# fields it writes under [source][geo]. MaxMind's own tree search is not included.
CITIES = Array.new(50) do |i|
  { "city_name" => "City#{i}", "country_iso_code" => "C#{i % 20}", "country_name" => "Country#{i % 20}",
    "continent_code" => "EU", "region_name" => "Region#{i % 7}", "timezone" => "Europe/Lisbon",
    "postal_code" => "10#{i}", "location" => { "lat" => -60.0 + i * 2.5, "lon" => -170.0 + i * 7.0 } }
end
geo_by_address = Hash.new { |table, address| table[address] = CITIES[address.hash % CITIES.size] }

def geoip_stand_in(event, geo_by_address)
  geo = geo_by_address[event.get("remote_addr")]
  event.set("[source][ip]", event.get("remote_addr"))
  geo.each { |field, value| event.set("[source][geo][#{field}]", value) }
end

# Each event carries the event_id the ingest pipeline gives it (its byte offset in the file), so
# the aggregation's replay check runs as it does in Logstash.
raw_bytes = 0
events = File.foreach(path).map do |line|
  data = JSON.parse(line)
  event_id = "bench-node:1-0123456789abcdef:#{raw_bytes}"
  raw_bytes += line.bytesize
  LogStash::Event.new(data.merge("@timestamp" => Time.iso8601(data["time_local"] + "Z"),
                                 "@metadata" => { "event_id" => event_id }))
end

metrics = []
half = events.size / 2
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
cpu_started = thread_cpu_seconds
cpu_second_half = cpu_started
events.each_with_index do |event, i|
  cpu_second_half = thread_cpu_seconds if i == half
  geoip_stand_in(event, geo_by_address)
  metrics.concat(filter.filter(event))
end
finished = Process.clock_gettime(Process::CLOCK_MONOTONIC)
cpu_finished = thread_cpu_seconds
last = events.last.get("@timestamp").to_f
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

# The ingest pipeline's identity filter over the same file, read back as the log it came from
# (a stat and two preads per event, a scan on the first).
identity = ScriptFilter.new(File.expand_path("../logstash/ruby/event_identity.rb", __dir__),
                            "node" => "bench-node")
lines = File.foreach(path).map(&:chomp)
stamped = lines.map do |line|
  LogStash::Event.new("@metadata" => { "path" => path }, "event" => { "original" => line })
end
identity_cpu_started = thread_cpu_seconds
stamped.each { |event| identity.filter(event) }
identity_cpu = thread_cpu_seconds - identity_cpu_started
unverified = stamped.count { |event| event.get("[@metadata][event_id]").include?(":unverified:") }

elapsed = finished - started
puts JSON.generate(
  "events" => events.size,
  "raw_bytes" => raw_bytes,
  "wall_seconds" => elapsed,
  "wall_events_per_second" => events.size / elapsed,
  "cpu_seconds" => cpu_finished - cpu_started,
  "cpu_events_per_second" => events.size / (cpu_finished - cpu_started),
  # The second half runs after JRuby's JIT has compiled the hot methods, as a long-running
  # Logstash does.
  "second_half_cpu_events_per_second" => (events.size - half) / (cpu_finished - cpu_second_half),
  "metric_documents" => metrics.size,
  "windows" => metrics.count { |m| m.get("metric") == "summary" },
  "bulk_bytes" => bulk_bytes,
  "identity_cpu_events_per_second" => lines.size / identity_cpu,
  "identity_unverified" => unverified,
  "mode" => mode,
  "ruby" => RUBY_DESCRIPTION
)
