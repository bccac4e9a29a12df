# Event identity for the ingest pipeline (logstash-filter-ruby, `path =>` script API); the
# contract is in docs/contracts.md ("Event identity").
#
# event_id = "<node>:<inode>-<fingerprint>:<byte offset of the line>", where the fingerprint is
# the first 16 hex digits of the SHA-256 of the file's first line. Identical lines at different
# offsets are different events; a line read again after a restart gets the same id.
#
# Why this filter finds the offset itself: logstash-input-file (4.4.7 in Logstash 8.19.20's
# Gemfile.jruby-3.1.lock.release) puts only the path and the host on an event
# ([@metadata][path], [@metadata][host]; inputs/file.rb, post_process_this), no offset
# (logstash-plugins/logstash-input-file#7, open since 2015), and filters run after the persisted
# queue, so after a crash they see the queue's backlog and the file input's re-read (from its
# sincedb) mixed, with no position attached. Instead the position is read back from the file:
# the next line of a file is expected right after the previous one, and the bytes there are
# compared with the event's original line (per event: a stat of the path and two short preads,
# the file's first line, to notice a rewritten inode, and the expected line). When that fails
# (first event of a file, a restart, a rotation) the file is scanned for the line; an offset is
# used only when the line occurs exactly once where it could be (an ambiguous line leaves every
# candidate position as an expectation, and the next lines narrow them down). When a
# line's offset cannot be proven (identical lines around a restart point, a file already
# deleted) the event gets an id of its own ("<node>:unverified:<uuid>"): a replay of it may then
# be counted twice, but two different requests are never merged.
#
# The ingest pipeline runs one ordered worker (config/pipelines.yml): lines of one file arrive
# in file order, which the expectation relies on, and the state below needs no lock.
require "digest"
require "json"
require "securerandom"
require "socket"

module BacalhauLogs
  module EventIdentity
    FINGERPRINT_BYTES = 1024 # Filebeat's default fingerprint length; ample for an access line
    SCAN_CHUNK = 1 << 20

    # One log file, held open by inode so a rotated (renamed, or already unlinked) file can
    # still be read back.
    class SourceFile
      attr_reader :key, :ino
      attr_accessor :expected

      def self.open(path)
        io = File.open(path, "rb")
        stat = io.stat
        head = io.pread([FINGERPRINT_BYTES, stat.size].min, 0) || "".b
        first_line = head[/\A[^\n]*\n/n] || (head.bytesize == FINGERPRINT_BYTES ? head : nil)
        # A first line still being written would change the key later: not a usable file yet
        # (nor the source of the event at hand, since the file input emits whole lines only).
        return io.close && nil if first_line.nil?

        new(io, stat.ino, first_line)
      rescue SystemCallError
        io&.close
        nil
      end

      def initialize(io, ino, first_line)
        @io = io
        @ino = ino
        @first_line = first_line
        @key = "#{ino}-#{Digest::SHA256.hexdigest(first_line)[0, 16]}"
        @expected = []
      end

      # False once the inode holds another file (truncated and written again).
      def unchanged?
        line_at?(0, @first_line)
      end

      def line_at?(offset, needle)
        @io.pread(needle.bytesize, offset) == needle
      rescue EOFError, SystemCallError
        false
      end

      # Every line start where needle (a line with its "\n") occurs, stopping past `limit`.
      def offsets_of(needle, limit)
        found = []
        position = 0
        carry = "".b # the end of the previous chunk, so a match across two chunks is seen
        loop do
          chunk = @io.pread(SCAN_CHUNK, position)
          break if chunk.nil? || chunk.empty?

          window = carry + chunk
          base = position - carry.bytesize
          first_new = position - needle.bytesize + 1 # earlier starts were in the last window
          index = 0
          while (index = window.index(needle, index))
            start = base + index
            if start >= first_new && (start.zero? || window.getbyte(index - 1) == 10)
              found << start
              return found if found.size > limit
            end
            index += 1
          end
          position += chunk.bytesize
          carry = window.byteslice(-[needle.bytesize, window.bytesize].min, needle.bytesize)
        end
        found
      rescue EOFError
        found
      end

      def close
        @io.close unless @io.closed?
      end

      def closed?
        @io.closed?
      end
    end

    class Stamper
      def initialize(node: "", max_open_files: 4, max_candidates: 1024)
        @node = node
        @max_open_files = max_open_files
        @max_candidates = max_candidates
        @files = {} # key => SourceFile, least recently used first
        @by_path = {} # path => SourceFile last seen there
      end

      # The event id of `line` (the bytes the file input read, without the newline) from `path`.
      def event_id(path, line, node = @node)
        needle = line.b + "\n"
        matches = expectation_matches(candidates(path, reopen: false), needle)
        matches = scan_matches(candidates(path, reopen: true), needle) if matches.empty?
        matches.group_by(&:first).each do |file, pairs|
          file.expected = pairs.map { |_, offset| offset + needle.bytesize }
        end
        return "#{node}:#{matches[0][0].key}:#{matches[0][1]}" if matches.size == 1

        "#{node}:unverified:#{SecureRandom.uuid}"
      end

      private

      # The files this path's line can come from: the one there now, and the one seen there
      # before (the file input may still deliver a renamed file's lines under its old name).
      # A stat per event is enough to notice a new file; the fresh open (and fingerprint) is
      # for a new inode, or a resync, where the same inode may now hold another file.
      def candidates(path, reopen:)
        previous = @by_path[path]
        ino = File.stat(path).ino
        reuse = !reopen && previous&.ino == ino && previous.unchanged?
        current = reuse ? previous : open_file(path)
        @by_path[path] = current if current
        # The same inode under another key is the file's former content: nothing comes from it.
        forget(previous) if previous && current && previous.ino == ino && !previous.equal?(current)
        [current, previous].compact.uniq.reject(&:closed?)
      rescue SystemCallError # gone: only the file seen there before can still hold the line
        [previous].compact
      end

      def expectation_matches(files, needle)
        files.flat_map do |file|
          file.expected.select { |offset| file.line_at?(offset, needle) }.map { |o| [file, o] }
        end
      end

      # Every candidate is scanned, so a line found once in each of two files stays ambiguous.
      def scan_matches(files, needle)
        files.flat_map do |file|
          offsets = file.offsets_of(needle, @max_candidates)
          if offsets.size > @max_candidates
            file.expected = []
            return []
          end
          offsets.map { |offset| [file, offset] }
        end
      end

      def open_file(path)
        fresh = SourceFile.open(path)
        return nil unless fresh

        known = @files[fresh.key]
        return remember(fresh) unless known

        fresh.close
        touch(known)
      end

      def touch(file)
        @files.delete(file.key)
        @files[file.key] = file
      end

      def remember(file)
        @files[file.key] = file
        forget(@files.values.first) while @files.size > @max_open_files
        file
      end

      def forget(file)
        @files.delete(file.key) if @files[file.key].equal?(file)
        @by_path.delete_if { |_, seen| seen.equal?(file) }
        file.close
      end
    end

    # The archived line: the original object with one key added, every other byte unchanged.
    def self.archive_line(original, event_id)
      field = "\"event_id\":#{JSON.generate([event_id])[1..-2]}"
      close = original.rindex("}")
      return nil if close.nil? || !original.lstrip.start_with?("{")

      body = original[0...close]
      separator = body.strip == "{" ? "" : ","
      "#{body}#{separator}#{field}#{original[close..]}"
    end
  end
end

def register(params)
  node = params.fetch("node", "").to_s
  @stamper = BacalhauLogs::EventIdentity::Stamper.new(node: node.empty? ? Socket.gethostname : node)
end

def filter(event)
  path = event.get("[@metadata][path]")
  original = event.get("[event][original]")
  return [event] if path.nil? || original.nil?

  # The file input's own host name, so ids and the host field agree.
  host = event.get("[@metadata][host]")
  id = host ? @stamper.event_id(path, original, host) : @stamper.event_id(path, original)
  event.set("[@metadata][event_id]", id)
  line = BacalhauLogs::EventIdentity.archive_line(original, id)
  if line
    event.set("[@metadata][archive_line]", line)
  else
    event.tag("_event_id_not_an_object")
  end
  [event]
end
