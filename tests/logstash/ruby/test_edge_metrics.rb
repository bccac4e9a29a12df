# Minitest suite for logstash/ruby/edge_metrics.rb, run through the Event stand-in.
# Run: ruby tests/logstash/ruby/test_edge_metrics.rb (tests/logstash/test_ruby_filters.py does).
require "minitest/autorun"
require_relative "logstash_stub"

SCRIPT = File.expand_path("../../../logstash/ruby/edge_metrics.rb", __dir__)
T0 = Time.utc(2025, 4, 8, 21, 0, 0)

class EdgeMetricsTest < Minitest::Test
  def build(params = {})
    defaults = { "window_seconds" => "60", "region" => "eu-west-1", "node" => "node-a" }
    ScriptFilter.new(SCRIPT, defaults.merge(params))
  end

  def access(offset, status: 200, ip: "10.0.0.1", request: "/", bytes: 100, agent: "curl/8")
    LogStash::Event.new(
      "@timestamp" => T0 + offset, "remote_addr" => ip, "status" => status,
      "request" => request, "body_bytes_sent" => bytes, "http_user_agent" => agent
    )
  end

  def tick(offset)
    LogStash::Event.new("@timestamp" => T0 + offset, "tags" => ["_edge_metrics_tick"])
  end

  def docs(events, metric)
    events.map(&:to_hash).select { |d| d["metric"] == metric }
  end

  def entries(events, metric)
    docs(events, metric).to_h { |d| [d["key"], d["count"]] }
  end

  def test_normalization_drops_query_replaces_ids_and_caps_depth
    normalizer = build.constant(:BacalhauLogs)::PathNormalizer
    assert_equal "/image/:id/productModel",
                 normalizer.normalize("/image/64456/productModel/200x200?size=l", 3)
    assert_equal "/api/users/:id", normalizer.normalize("/api/users/42?x=1#frag", 3)
    assert_equal "/api/orders/:id",
                 normalizer.normalize("/api/orders/0b8f6f1e-4c1d-4a8e-9d3c-2f1e0a9b7c6d", 3)
    assert_equal "/a/b", normalizer.normalize("//a//b/", 3)
    assert_equal "/", normalizer.normalize("/?q=1", 3)
    assert_equal "/", normalizer.normalize(nil, 3)
    assert_equal "/v2", normalizer.normalize("/v2/items/7", 1)
  end

  def test_access_events_are_consumed_and_nothing_is_emitted_inside_a_window
    filter = build
    event = access(1)
    assert_empty filter.filter(event)
    assert event.cancelled?
  end

  def test_a_later_window_closes_the_earlier_one_with_counts_and_bytes
    filter = build
    filter.filter(access(1, status: 200, bytes: 100))
    filter.filter(access(2, status: 404, bytes: 50))
    filter.filter(access(3, status: 200, bytes: 25))
    out = filter.filter(access(61))
    summary = docs(out, "summary").first
    assert_equal 3, summary["requests"]
    assert_equal 175, summary["bytes_sent"]
    assert_equal({ "200" => 2, "404" => 1 }, entries(out, "status"))
    assert_equal [200, 404], docs(out, "status").map { |d| d["status"] }
    assert_equal "2025-04-08T21:00:00Z", summary["window_start"]
    assert_equal "2025-04-08T21:01:00Z", summary["window_end"]
    assert_equal T0.to_f, out.first.get("@timestamp").to_f
    assert_equal({ "name" => "node-a" }, summary["host"])
    assert_equal "eu-west-1", summary["region"]
    assert_includes summary["tags"], "bacalhau_metrics"
  end

  def test_integer_statuses_fill_the_403_404_429_lists
    filter = build
    filter.filter(access(1, status: 404, request: "/old/page?ref=x"))
    filter.filter(access(2, status: 404, request: "/old/page"))
    filter.filter(access(3, status: 403, ip: "10.0.0.3"))
    filter.filter(access(4, status: 429, ip: "10.0.0.4"))
    filter.filter(access(5, status: 429, ip: "10.0.0.4"))
    filter.filter(access(6, status: 200, ip: "10.0.0.9", request: "/ok"))
    out = filter.filter(access(60))
    assert_equal({ "/old/page" => 2 }, entries(out, "gone_page"))
    assert_equal({ "10.0.0.3" => 1 }, entries(out, "unauthorized_ip"))
    assert_equal({ "10.0.0.4" => 2 }, entries(out, "throttled_ip"))
  end

  def test_string_statuses_count_the_same_as_integers
    filter = build
    filter.filter(access(1, status: "404", request: "/gone"))
    out = filter.filter(access(60))
    assert_equal({ "/gone" => 1 }, entries(out, "gone_page"))
    assert_equal({ "404" => 1 }, entries(out, "status"))
  end

  def test_top_n_cut_ranks_by_count_then_key_and_applies_minimum_count
    filter = build("top_n" => "3", "min_count" => "2")
    { "10.0.0.1" => 5, "10.0.0.2" => 4, "10.0.0.3" => 4, "10.0.0.4" => 3, "10.0.0.5" => 1 }
      .each { |ip, n| n.times { |i| filter.filter(access(i, ip: ip)) } }
    out = filter.filter(access(60))
    ranked = docs(out, "top_ip").map { |d| [d["rank"], d["key"], d["count"]] }
    assert_equal [[1, "10.0.0.1", 5], [2, "10.0.0.2", 4], [3, "10.0.0.3", 4]], ranked
  end

  def test_minimum_count_drops_entries_below_it
    filter = build("min_count" => "3")
    2.times { filter.filter(access(1, ip: "10.0.0.7")) }
    out = filter.filter(access(60))
    assert_empty docs(out, "top_ip")
    assert_equal 2, docs(out, "summary").first["requests"]
  end

  def test_pages_user_agents_and_geo_lists
    filter = build
    geo_event = access(1, request: "/api/users/7?x=1", agent: "UA-1")
    geo_event.set("[source][geo][location]", { "lat" => 38.7, "lon" => -9.1 })
    geo_event.set("[source][geo][country_iso_code]", "PT")
    geo_event.set("[source][geo][city_name]", "Lisbon")
    filter.filter(geo_event)
    filter.filter(access(2, request: "/api/users/8", agent: "UA-1"))
    out = filter.filter(access(60))
    assert_equal({ "/api/users/:id" => 2 }, entries(out, "top_page"))
    assert_equal({ "UA-1" => 2 }, entries(out, "top_user_agent"))
    geo = docs(out, "top_geo")
    assert_equal 1, geo.size
    assert_equal "Lisbon, PT", geo.first["key"]
    assert_equal({ "lat" => 38.7, "lon" => -9.1 }, geo.first["location"])
    assert_equal "PT", geo.first["country"]
  end

  def test_events_without_geo_leave_the_geo_list_empty
    filter = build
    filter.filter(access(1))
    assert_empty docs(filter.filter(access(60)), "top_geo")
  end

  def test_idle_node_reports_its_last_window_on_ticks
    filter = build
    filter.filter(access(10))
    assert_empty filter.filter(tick(12)), "window still open"
    out = filter.filter(tick(61))
    assert_equal 1, docs(out, "summary").first["requests"]
    assert_empty filter.filter(tick(66)), "a window is reported once"
  end

  def test_a_tick_waits_while_events_arrived_since_the_previous_tick
    filter = build
    filter.filter(access(10))
    filter.filter(tick(58))
    filter.filter(access(59))
    assert_empty filter.filter(tick(61))
    out = filter.filter(tick(66))
    assert_equal 2, docs(out, "summary").first["requests"]
  end

  def test_ticks_do_not_close_a_window_that_still_receives_events
    filter = build
    filter.filter(access(5))
    filter.filter(tick(100))
    filter.filter(access(6)) # backfill: old events keep arriving after the window's end
    assert_empty filter.filter(tick(105))
    out = filter.filter(tick(110))
    assert_equal 2, docs(out, "summary").first["requests"]
  end

  def test_ticks_are_consumed
    filter = build
    event = tick(1)
    assert_empty filter.filter(event)
    assert event.cancelled?
  end

  def test_document_ids_are_unique_within_a_flush_and_kept_out_of_the_document
    filter = build
    filter.filter(access(1, status: 404))
    out = filter.filter(access(60))
    ids = out.map { |e| e.get("[@metadata][document_id]") }
    assert_equal ids.uniq.size, ids.size
    assert ids.all? { |id| id.start_with?("node-a-") }
    refute out.first.to_hash.key?("@metadata")
  end

  def test_window_of_an_event_follows_its_timestamp_not_arrival
    filter = build("window_seconds" => "300")
    filter.filter(access(299))
    assert_empty filter.filter(access(100))
    out = filter.filter(access(300))
    assert_equal 2, docs(out, "summary").first["requests"]
    assert_equal 300, docs(out, "summary").first["window_seconds"]
  end

  def test_invalid_parameters_fail_at_register
    assert_raises(ArgumentError) { build("window_seconds" => "0") }
    assert_raises(ArgumentError) { build("min_count" => "many") }
  end

  def test_empty_parameters_fall_back_to_defaults
    filter = build("min_count" => "", "node" => "")
    filter.filter(access(1))
    out = filter.filter(access(60))
    refute_empty docs(out, "top_ip")
    refute_empty docs(out, "summary").first["host"]["name"]
  end
end
