# A minimal stand-in for the parts of Logstash's Ruby Event API that our scripts use, and for
# the way logstash-filter-ruby loads a `path =>` script. Behaviour mirrors Logstash 8:
#   * field references are "name" or "[a][b]"; get of a missing field is nil
#   * "@timestamp" is a LogStash::Timestamp (strings given to new/set are parsed), default now
#   * "@metadata" is kept out of to_hash
#   * a script's filter(event) must return an Array of events; the input event is cancelled
#     unless it is part of that Array
require "time"

module LogStash
  class Timestamp
    attr_reader :time

    def initialize(time)
      @time = time.utc
    end

    def self.parse_iso8601(text)
      new(Time.iso8601(text))
    end

    def to_f
      @time.to_f
    end

    def to_i
      @time.to_i
    end

    def to_iso8601
      @time.iso8601(3)
    end
  end

  class Event
    def initialize(data = {})
      @data = deep_copy(data)
      @data["@timestamp"] = coerce_timestamp(@data.fetch("@timestamp", Time.now))
      @data["@version"] ||= "1"
      @cancelled = false
    end

    def get(reference)
      keys = path(reference)
      return @data[keys[0]] if keys.size == 1

      keys.reduce(@data) { |node, key| node.is_a?(Hash) ? node[key] : nil }
    end

    def set(reference, value)
      *parents, leaf = path(reference)
      node = parents.reduce(@data) { |h, key| h[key] = h[key].is_a?(Hash) ? h[key] : {} }
      node[leaf] = leaf == "@timestamp" ? coerce_timestamp(value) : value
    end

    def include?(reference)
      !get(reference).nil?
    end

    def tag(name)
      tags = get("tags") || []
      set("tags", tags + [name]) unless tags.include?(name)
    end

    def cancel
      @cancelled = true
    end

    def cancelled?
      @cancelled
    end

    def to_hash
      @data.reject { |key, _| key == "@metadata" }
    end

    private

    # Parsed once per distinct reference, as Logstash's FieldReference cache does, so the
    # benchmark measures the scripts rather than this stand-in.
    PATHS = Hash.new do |cache, reference|
      cache[reference] = (reference.start_with?("[") ? reference.scan(/\[([^\]]+)\]/).flatten : [reference]).freeze
    end

    def path(reference)
      PATHS[reference]
    end

    def coerce_timestamp(value)
      case value
      when Timestamp then value
      when Time then Timestamp.new(value)
      else Timestamp.parse_iso8601(value.to_s)
      end
    end

    def deep_copy(value)
      case value
      when Hash then value.to_h { |k, v| [k.to_s, deep_copy(v)] }
      when Array then value.map { |v| deep_copy(v) }
      else value
      end
    end
  end
end

# Records what a script logs, level and message.
class RecordingLogger
  attr_reader :messages

  def initialize
    @messages = []
  end

  %i[debug info warn error].each do |level|
    define_method(level) { |message, *_details| @messages << [level, message] }
  end
end

# Loads a script the way logstash-filter-ruby does (instance_eval into a fresh context that
# answers `logger`, as its Script::ExecutionContext does, v3.1.8) and applies the plugin's rules
# to what filter returns.
class ScriptFilter
  attr_reader :logger

  def initialize(path, params)
    @logger = RecordingLogger.new
    @context = Object.new
    recording = @logger
    @context.define_singleton_method(:logger) { recording }
    @context.instance_eval(File.read(path), path, 1)
    @context.register(params)
  end

  def constant(name)
    @context.singleton_class.const_get(name)
  end

  def filter(event)
    results = @context.filter(event)
    raise "filter must return an Array, got #{results.class}" unless results.is_a?(Array)
    raise "filter returned a non-event" unless results.all? { |r| r.is_a?(LogStash::Event) }

    event.cancel unless results.any? { |r| r.equal?(event) }
    results.reject { |r| r.equal?(event) }
  end
end
