"""Rewrite a log file DuckDB could not read into one it can, keeping every good line.

Used only after a read failed on that file, so the common path never pays for it:
- a gzip file that is truncated or not gzip keeps the whole lines before the damage (read
  member by member: `gzip.open` raises before handing over the last chunk it decoded);
- a line longer than MAX_LINE_BYTES is dropped without being held in memory, and counted.
The copy is plain NDJSON in the reader's private scratch folder, never next to the original.
"""

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.events import MAX_LINE_BYTES

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Sanitized:
    """What rewriting a file found: lines dropped as oversized, and damage (None if none)."""

    oversized_lines: int
    problem: str | None


def _gzip_chunks(source: Path, problems: list[str]) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(wbits=31)
    member_open = False
    with source.open("rb") as raw:
        while chunk := raw.read(_CHUNK):
            while chunk:
                member_open = True
                try:
                    yield decompressor.decompress(chunk)
                except zlib.error as error:
                    problems.append(f"not readable as gzip ({error})")
                    return
                chunk = b""
                if decompressor.eof:
                    # Another gzip member may follow: go on with a fresh decompressor.
                    chunk = decompressor.unused_data
                    decompressor = zlib.decompressobj(wbits=31)
                    member_open = False
    if member_open:
        problems.append("truncated gzip")


def _plain_chunks(source: Path) -> Iterator[bytes]:
    with source.open("rb") as raw:
        while chunk := raw.read(_CHUNK):
            yield chunk


def sanitize(source: Path, gzip: bool, target: Path) -> Sanitized:
    """Copy the readable lines of `source` to `target` (plain NDJSON)."""
    problems: list[str] = []
    chunks = _gzip_chunks(source, problems) if gzip else _plain_chunks(source)
    oversized = 0
    line = bytearray()
    skipping = False
    with target.open("wb") as sink:
        for chunk in chunks:
            start = 0
            while start < len(chunk):
                end = chunk.find(b"\n", start)
                piece = chunk[start:] if end < 0 else chunk[start : end + 1]
                start = len(chunk) if end < 0 else end + 1
                if not skipping:
                    line += piece
                    if len(line) > MAX_LINE_BYTES:
                        oversized, skipping = oversized + 1, True
                        line.clear()
                if end >= 0:
                    if not skipping:
                        sink.write(line)
                    line.clear()
                    skipping = False
        # A last line without a newline is kept, unless the file was cut mid-way.
        if line and not skipping and not problems:
            sink.write(line)
    return Sanitized(oversized, problems[0] if problems else None)
