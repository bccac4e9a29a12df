"""`compact`: turn each closed hour of raw archive objects into one `compacted.parquet`.

Decisions, and why:
- Progress lives in the output itself: `compacted.parquet` records in its Parquet metadata the
  raw objects it holds, by name and ETag (`bacalhau_logs.sources`). An hour is pending when a
  raw object is not there with the same ETag (a new object, or one overwritten), nor in
  `bacalhau_logs.rejected` with the same ETag, so a re-run over an unchanged hour reads one
  footer and writes nothing.
- A rebuild merges the existing compacted rows with the pending raw objects only. Raw objects
  are aged out by lifecycle rules, so rebuilding from what is still listed would lose events.
- Every object is read as the version listed (`If-Match` with its ETag), footer and rows of
  the compacted file alike, and the new file is written only if the compacted file is still
  that version (`If-Match`), or still absent (`If-None-Match: *`). Two compactors that overlap
  cannot both win: the loser's write is refused and it redoes the hour from what the winner
  wrote, so `sources` never names an object whose rows the file lacks.
- An object that cannot be fully decoded (not gzip, truncated) contributes no rows and is
  kept out of `sources`: readers then still read it themselves and report it, rather than its
  events silently vanishing. It is recorded under `rejected` with its ETag, so it is not
  retried every run, but is if it is overwritten.
- A compacted file that cannot be read (not Parquet, bad metadata) is reported and left as
  it is, for an operator: this hour is skipped, the others go on, and readers fall back to the
  hour's raw objects meanwhile.
- Duplicates are removed by event identity (`event_id`; the whole event for lines archived
  before identities), never by content alone, so identical requests stay separate events.
- Memory does not grow with the hour: raw rows stream from DuckDB through the de-duplication
  into a Parquet writer one row group (ROW_GROUP_ROWS events) at a time, its repetitive text
  columns buffered as Arrow dictionaries.
- Size: each row group is sorted by identity, with `event_id` split into a source and an
  offset (agent/archive.py), and every text column written as a dictionary in sorted order.
  That makes the file over 40x smaller than the hour's NDJSON at zstd level 1
  (docs/bench-agent.md): larger row groups or higher levels gain a few per cent for memory or
  CPU the job does not have.
"""

import shutil
import struct
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from agent.archive import (
    COMPACTED_NAME,
    ID_OFFSET,
    ID_SOURCE,
    RAW_SUFFIX,
    Hour,
    decode_rejected,
    decode_source_etags,
    encode_metadata,
    id_columns,
    parse_hour_key,
)
from agent.budget import Budget
from agent.discover import Window
from agent.events import EVENT_ID, FIELDS, ParquetFile, RawFile, literal_path
from agent.s3 import S3Client, is_fatal
from agent.schema import COMPACTED_SCHEMA
from agent.stream import Counts, Part, Reader, ReadFailure, connect
from agent.times import utc_now

_FOOTER_GUESS = 64 * 1024
# Events per row group (about 12 MB buffered). On the benchmark's 3M-event hour: 40.1x smaller
# than the NDJSON at 64Ki, 41.0x at 128Ki, 42.6x at 256Ki but for 50 MiB more peak memory.
ROW_GROUP_ROWS = 1 << 17
# Another compactor won the race for an hour: redo it from what that one wrote.
_CONFLICT_ATTEMPTS = 3
# An hour's objects are fetched this many at a time: one GET stream rarely fills the link
# (S3 serves each at tens of MB/s), and botocore's clients are thread-safe.
DOWNLOAD_WORKERS = 4
_CONFLICT_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


@dataclass(frozen=True)
class RawObject:
    """A raw archive object: its basename, key and ETag."""

    name: str
    key: str
    etag: str


@dataclass
class HourObjects:
    """What the bucket holds for one hour."""

    hour: Hour
    raw: dict[str, RawObject] = field(default_factory=dict)
    compacted_key: str | None = None
    compacted_etag: str | None = None


@dataclass(frozen=True)
class Recorded:
    """What an hour's compacted file says it was built from."""

    sources: dict[str, str | None] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """The result of looking at one hour."""

    hour: Hour
    written: bool
    events: int = 0
    duplicates: int = 0
    malformed_lines: int = 0
    new_sources: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)


@dataclass
class Summary:
    """What one pass did."""

    outcomes: list[Outcome] = field(default_factory=list)
    failed: list[Hour] = field(default_factory=list)


class DamagedCompacted(Exception):
    """An hour's compacted.parquet cannot be read; the hour is left for an operator."""


class Conflict(Exception):
    """The compacted file changed since it was listed: another compactor wrote it."""


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class Compactor:
    """Compacts the closed hours under `prefix` in `bucket`."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,
        grace: timedelta,
        now: Callable[[], datetime] = utc_now,
        budget: Budget | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.grace = grace
        self.now = now
        self.budget = budget or Budget(512 << 20, 2)

    def list_hours(self, prefix: str | None = None) -> list[HourObjects]:
        """Every hour in the layout with its raw objects and compacted file, oldest first."""
        hours: dict[Hour, HourObjects] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix or self.prefix):
            for item in page.get("Contents", []):
                parsed = parse_hour_key(item["Key"], self.prefix)
                if parsed is None:
                    continue
                hour, name = parsed
                objects = hours.setdefault(hour, HourObjects(hour))
                if name == COMPACTED_NAME:
                    objects.compacted_key = item["Key"]
                    objects.compacted_etag = item["ETag"]
                elif name.endswith(RAW_SUFFIX):
                    objects.raw[name] = RawObject(name, item["Key"], item["ETag"])
        return [hours[h] for h in sorted(hours)]

    def closed(self, hour: Hour) -> bool:
        """An hour is closed once its end plus the grace period has passed."""
        return hour.end + self.grace <= self.now()

    def _get(self, key: str, etag: str, byte_range: str | None = None) -> Any:
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "IfMatch": etag}
        if byte_range:
            arguments["Range"] = byte_range
        try:
            return self.client.get_object(**arguments)["Body"]
        except ClientError as error:
            if _code(error) in _CONFLICT_CODES:
                raise Conflict(key) from None
            raise

    def recorded(self, objects: HourObjects) -> Recorded:
        """The compacted file's metadata, from ranged GETs of its footer (the listed version)."""
        key, etag = objects.compacted_key, objects.compacted_etag
        if key is None or etag is None:
            return Recorded()
        try:
            tail = self._get(key, etag, f"bytes=-{_FOOTER_GUESS}").read()
            if len(tail) < 12 or tail[-4:] != b"PAR1":
                raise DamagedCompacted(f"{key}: not a Parquet file")
            footer_length = struct.unpack("<I", tail[-8:-4])[0]
            if footer_length + 8 > len(tail):
                tail = self._get(key, etag, f"bytes=-{footer_length + 8}").read()
            metadata = pq.read_metadata(pa.BufferReader(tail)).metadata or {}
            return Recorded(decode_source_etags(metadata), decode_rejected(metadata))
        except ClientError as error:
            if _code(error) in {"InvalidRange", "416"}:
                raise DamagedCompacted(f"{key}: empty") from None
            raise
        except (ValueError, OSError, struct.error) as error:
            raise DamagedCompacted(f"{key}: {str(error).splitlines()[0]}") from None

    def pending(self, objects: HourObjects, recorded: Recorded) -> list[RawObject]:
        """Raw objects the compacted file does not account for, as listed (name and ETag)."""

        def accounted(raw: RawObject) -> bool:
            if raw.name in recorded.sources:
                # A file from before ETags were recorded names its sources only.
                return recorded.sources[raw.name] in (None, raw.etag)
            return recorded.rejected.get(raw.name) == raw.etag

        return [raw for _, raw in sorted(objects.raw.items()) if not accounted(raw)]

    def compact_hour(self, objects: HourObjects) -> Outcome:
        """Bring one hour's compacted file up to date; writes only if something is pending.

        Redone from a fresh listing if another compactor writes the hour meanwhile.
        """
        for attempt in range(_CONFLICT_ATTEMPTS):
            if attempt:
                fresh = self.list_hours(objects.hour.prefix(self.prefix))
                objects = fresh[0] if fresh else HourObjects(objects.hour)
            try:
                return self._compact_once(objects)
            except Conflict:
                continue
        raise Conflict(f"{objects.hour.prefix(self.prefix)}: another compactor kept writing it")

    def _compact_once(self, objects: HourObjects) -> Outcome:
        recorded = self.recorded(objects)
        pending = self.pending(objects, recorded)
        if not pending:
            return Outcome(objects.hour, written=False)
        with tempfile.TemporaryDirectory(prefix="agent-compact-") as scratch:
            workdir = Path(scratch)
            target = workdir / COMPACTED_NAME
            outcome = self._build(objects, recorded, pending, workdir, target)
            self._upload(objects, target)
        return outcome

    def _download_all(self, downloads: list[tuple[str, str, Path]]) -> None:
        """Fetch each (key, ETag) into its path, DOWNLOAD_WORKERS at a time. The first
        failure is raised once the downloads under way have ended; those not yet started
        are cancelled."""
        with ThreadPoolExecutor(max(1, min(DOWNLOAD_WORKERS, len(downloads)))) as pool:
            futures = [pool.submit(self._download, *download) for download in downloads]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise

    def _download(self, key: str, etag: str, path: Path) -> None:
        body = self._get(key, etag)
        with path.open("wb") as sink:
            shutil.copyfileobj(body, sink, 1 << 20)

    def _build(
        self,
        objects: HourObjects,
        recorded: Recorded,
        pending: list[RawObject],
        workdir: Path,
        target: Path,
    ) -> Outcome:
        """Stream the existing rows and the pending objects, de-duplicated, into `target`."""
        names: dict[str, Path] = {}
        by_path: dict[str, RawObject] = {}
        raw_files = []
        downloads = []
        for index, raw in enumerate(pending):
            path = workdir / f"raw-{index}{RAW_SUFFIX}"
            downloads.append((raw.key, raw.etag, path))
            sql_path = literal_path(str(path))
            names[sql_path], by_path[str(path)] = path, raw
            raw_files.append(RawFile(sql_path, gzip=True))
        existing_path = None
        if objects.compacted_key and objects.compacted_etag:
            existing_path = workdir / "existing.parquet"
            downloads.append((objects.compacted_key, objects.compacted_etag, existing_path))
        self._download_all(downloads)
        existing = []
        if existing_path is not None:
            ids = id_columns(pq.read_schema(existing_path).names)
            existing.append(ParquetFile(literal_path(str(existing_path)), ids))
            names[existing[0].sql_path] = existing_path
        part = Part(raw=raw_files, compacted=existing, dedup=True)
        reader = Reader(
            connect(self.budget, workdir), [part], names, Window(), workdir, salvage=False
        )
        examined = {r.name for r in pending}
        still_rejected = {k: v for k, v in recorded.rejected.items() if k not in examined}

        def damaged() -> dict[str, str]:
            return {by_path[str(p)].name: by_path[str(p)].etag for p in reader.damaged}

        def metadata() -> dict[str, str]:
            readable = {r.name: r.etag for r in pending if r.name not in damaged()}
            # Names recorded before ETags were: kept, with an empty ETag.
            sources = {k: v or "" for k, v in recorded.sources.items()} | readable
            return encode_metadata(sources, still_rejected | damaged())

        try:
            counts = self._write(reader, target, metadata)
        finally:
            reader.close()
        readable = sorted(r.name for r in pending if r.name not in damaged())
        return Outcome(
            objects.hour,
            written=True,
            events=counts.events,
            duplicates=counts.duplicates,
            malformed_lines=counts.malformed + reader.oversized_lines,
            new_sources=readable,
            rejected=damaged(),
        )

    def _write(
        self, reader: Reader, target: Path, metadata: Callable[[], dict[str, str]]
    ) -> Counts:
        """Write every event the reader yields, then `metadata()` into the footer; start
        over if a damaged file had to be rejected."""
        while True:
            counts = Counts()
            groups = _RowGroups(target)
            try:
                for batch in reader.batches(FIELDS, counts, with_ids=True):
                    groups.add(batch)
                groups.flush()
            except ReadFailure as failure:
                groups.close()
                # Each repair rewrites or rejects one more file, so this ends.
                if reader.repair(failure):
                    continue
                raise
            groups.writer.add_key_value_metadata(metadata())
            groups.close()
            return counts

    def _upload(self, objects: HourObjects, path: Path) -> None:
        """One conditional PutObject: refused if another compactor wrote the hour meanwhile."""
        key = objects.hour.prefix(self.prefix) + COMPACTED_NAME
        kind = "application/vnd.apache.parquet"
        with path.open("rb") as body:
            try:
                if objects.compacted_etag:
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=body,
                        ContentType=kind,
                        IfMatch=objects.compacted_etag,
                    )
                else:
                    self.client.put_object(
                        Bucket=self.bucket, Key=key, Body=body, ContentType=kind, IfNoneMatch="*"
                    )
            except ClientError as error:
                if _code(error) in _CONFLICT_CODES:
                    raise Conflict(key) from None
                raise

    def run_once(self, log: TextIO = sys.stderr) -> Summary:
        """Compact every closed hour that has something pending.

        An error confined to one hour is reported and the next hour tried; one that no hour
        can survive (credentials, missing bucket, unreachable endpoint) is raised.
        """
        summary = Summary()
        for objects in self.list_hours():
            if not objects.raw or not self.closed(objects.hour):
                continue
            where = f"s3://{self.bucket}/{objects.hour.prefix(self.prefix)}"
            try:
                outcome = self.compact_hour(objects)
            except DamagedCompacted as error:
                log.write(
                    f"compact: error: s3://{self.bucket}/{error}: unreadable, left as it is; "
                    "readers use this hour's raw objects until it is removed or restored\n"
                )
                summary.failed.append(objects.hour)
                continue
            except (ClientError, BotoCoreError) as error:
                if is_fatal(error):
                    raise
                log.write(f"compact: error: {where}: {error}\n")
                summary.failed.append(objects.hour)
                continue
            except (Conflict, ReadFailure, OSError, ValueError, duckdb.Error) as error:
                log.write(f"compact: error: {where}: {error}\n")
                summary.failed.append(objects.hour)
                continue
            self._log(log, outcome)
            summary.outcomes.append(outcome)
        return summary

    def _log(self, log: TextIO, outcome: Outcome) -> None:
        where = f"s3://{self.bucket}/{outcome.hour.prefix(self.prefix)}"
        if not outcome.written:
            log.write(f"compact: {where}: up to date\n")
            return
        log.write(
            f"compact: {where}{COMPACTED_NAME}: {outcome.events} events from "
            f"{len(outcome.new_sources)} new raw objects, {outcome.duplicates} duplicates "
            f"removed, {outcome.malformed_lines} malformed lines skipped\n"
        )
        for name in sorted(outcome.rejected):
            log.write(
                f"compact: warning: {where}{name}: not readable as gzip NDJSON; "
                "left out of sources (readers will report it)\n"
            )


# Dictionaries for every column but the two that are close to unique per event: offsets
# (sorted, so small deltas) and sizes (random digits; their bytes split into streams compress
# better). zstd level 1: on the benchmark's 3M-event hour it wrote 28.46 MB where the default
# level 3 wrote 28.97 MB, for less CPU (1.56-1.59 s against 1.60 s for the writer); level 6
# writes 28.34 MB for 0.33 s more, negative levels 34-36x instead of 42x.
# Without the Arrow schema in the file, readers see the text columns as plain strings, not as
# the dictionaries they were written from.
_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": [
        n for n in COMPACTED_SCHEMA.names if n not in (ID_OFFSET, "body_bytes_sent")
    ],
    "column_encoding": {ID_OFFSET: "DELTA_BINARY_PACKED", "body_bytes_sent": "BYTE_STREAM_SPLIT"},
    "data_page_version": "2.0",
    "dictionary_pagesize_limit": 8 << 20,
    "store_schema": False,
    # A reader's only filter on stored columns is the query window (time); min/max of the
    # other columns cost 0.1 CPU s per million events, and no reader uses them.
    "write_statistics": ["time_local"],
}
# Buffered as dictionaries: few distinct values, each long (user agents, referrers, sources).
_DICTIONARY_COLUMNS = frozenset(
    {"remote_addr", "remote_user", "http_method", "http_version", "http_referer",
     "http_user_agent", ID_SOURCE}
)  # fmt: skip
_TEXT = pa.dictionary(pa.int32(), pa.string())
_BUFFER_SCHEMA = pa.schema(
    pa.field(f.name, _TEXT) if f.name in _DICTIONARY_COLUMNS else f for f in COMPACTED_SCHEMA
)
# Written: every text column as a sorted dictionary (`_sorted_dictionary`).
_FILE_SCHEMA = pa.schema(
    pa.field(f.name, _TEXT) if f.type == pa.string() else f for f in COMPACTED_SCHEMA
)
_SORT_KEYS = [(ID_SOURCE, "ascending"), (ID_OFFSET, "ascending"), ("time_local", "ascending")]
# The longest offset kept as a number: every 18-digit decimal fits an int64.
_OFFSET_DIGITS = 18


def split_event_id(ids: pa.Array) -> tuple[pa.Array, pa.Array]:
    """`event_id` values as (source, offset) columns; see COMPACTED_SCHEMA.

    Split at the last `:` when what follows is a canonical decimal (ASCII digits, no leading
    zero, at most 18 of them), exactly the ids rebuilt byte for byte as `source:offset`.
    """
    halves = pc.split_pattern(ids, ":", max_splits=1, reverse=True)
    # One or two strings per id, as fixed pairs whose missing second is null (no colon): no
    # row needs an element its list lacks. A fifth cheaper than choosing between lists with
    # `if_else` (0.30 against 0.38 s over 3M ids).
    pairs = pc.list_slice(halves, 0, 2, return_fixed_size_list=True)
    head, tail = pc.list_element(pairs, 0), pc.list_element(pairs, 1)
    canonical = pc.and_(
        pc.and_(pc.ascii_is_decimal(tail), pc.less_equal(pc.utf8_length(tail), _OFFSET_DIGITS)),
        pc.or_(pc.equal(tail, "0"), pc.invert(pc.starts_with(tail, "0"))),
    )
    numeric = pc.fill_null(canonical, False)
    source = pc.if_else(numeric, head, ids)
    offset = pc.cast(pc.if_else(numeric, tail, None), pa.int64())
    return source, offset


class _RowGroups:
    """A Parquet writer fed event batches, writing one sorted row group per ROW_GROUP_ROWS.

    Writing on a thread of its own, overlapping the reading, was measured no faster: DuckDB's
    threads already keep both of the machine's cores busy (docs/bench-agent.md).
    """

    def __init__(self, target: Path) -> None:
        self.writer = pq.ParquetWriter(target, _FILE_SCHEMA, **_WRITE_OPTIONS)
        self.pending: list[pa.RecordBatch] = []
        self.rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.pending.append(_buffered(batch))
        self.rows += batch.num_rows
        if self.rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered as one row group, sorted by identity: a file's offsets are
        then small deltas, and neighbours share a source."""
        if not self.pending:
            return
        columns = pa.Table.from_batches(self.pending, _BUFFER_SCHEMA).unify_dictionaries().columns
        self.pending, rows, self.rows = [], self.rows, 0
        at = _BUFFER_SCHEMA.names.index
        # Arrow cannot sort dictionaries; one dictionary's indices group the sources as well.
        sources = pa.chunked_array([c.indices for c in columns[at(ID_SOURCE)].chunks], pa.int32())
        keys = pa.table([sources, columns[at(ID_OFFSET)], columns[at("time_local")]],
                        names=[ID_SOURCE, ID_OFFSET, "time_local"])  # fmt: skip
        order = pc.sort_indices(keys, _SORT_KEYS)
        del sources, keys
        # Column by column, each unsorted column dropped once sorted: one copy at a time.
        for index, column in enumerate(columns):
            if _FILE_SCHEMA.field(index).type == _TEXT:
                # Before sorting the rows: moving indices is cheaper than moving text.
                column = _sorted_dictionary(column)
            columns[index] = column.take(order)
            del column
        self.writer.write_table(pa.table(columns, schema=_FILE_SCHEMA), row_group_size=rows)

    def close(self) -> None:
        self.writer.close()


def _sorted_dictionary(column: pa.ChunkedArray) -> pa.DictionaryArray:
    """A text column as one dictionary in sorted order: neighbouring entries share prefixes
    (`/image/55132/...`), so the dictionary page compresses better (about 8 % of the file)."""
    whole = column.combine_chunks()
    encoded = whole if pa.types.is_dictionary(whole.type) else pc.dictionary_encode(whole)
    order = pc.sort_indices(encoded.dictionary)
    # Each old index's place in the sorted dictionary: the inverse of `order`.
    rank = np.empty(len(order), dtype=np.int32)
    rank[order.to_numpy()] = np.arange(len(order), dtype=np.int32)
    return pa.DictionaryArray.from_arrays(
        pc.take(pa.array(rank), encoded.indices), encoded.dictionary.take(order)
    )


def _buffered(batch: pa.RecordBatch) -> pa.RecordBatch:
    source, offset = split_event_id(batch.column(EVENT_ID))
    columns = {name: batch.column(name) for name in FIELDS} | {ID_SOURCE: source, ID_OFFSET: offset}
    arrays = []
    for field_ in _BUFFER_SCHEMA:
        array = columns[field_.name]
        if field_.name in _DICTIONARY_COLUMNS:
            arrays.append(pc.dictionary_encode(array))
        else:
            # A copy: a column imported from DuckDB keeps its whole batch alive otherwise.
            arrays.append(pa.concat_arrays([array.cast(field_.type)]))
    return pa.RecordBatch.from_arrays(arrays, schema=_BUFFER_SCHEMA)
