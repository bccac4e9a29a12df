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
  into a Parquet writer one row group at a time.
"""

import shutil
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from agent.archive import (
    COMPACTED_NAME,
    COMPACTED_SCHEMA,
    RAW_SUFFIX,
    Hour,
    decode_rejected,
    decode_source_etags,
    encode_metadata,
    parse_hour_key,
)
from agent.budget import Budget
from agent.discover import Window
from agent.events import EVENT_ID, FIELDS, ParquetFile, RawFile, literal_path
from agent.s3 import S3Client, is_fatal
from agent.stream import Counts, Part, Reader, ReadFailure
from agent.times import utc_now

_FOOTER_GUESS = 64 * 1024
ROW_GROUP_ROWS = 1 << 16
# Another compactor won the race for an hour: redo it from what that one wrote.
_CONFLICT_ATTEMPTS = 3
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
        for index, raw in enumerate(pending):
            path = workdir / f"raw-{index}{RAW_SUFFIX}"
            self._download(raw.key, raw.etag, path)
            sql_path = literal_path(str(path))
            names[sql_path], by_path[str(path)] = path, raw
            raw_files.append(RawFile(sql_path, gzip=True))
        existing = []
        if objects.compacted_key and objects.compacted_etag:
            path = workdir / "existing.parquet"
            self._download(objects.compacted_key, objects.compacted_etag, path)
            has_id = EVENT_ID in pq.read_schema(path).names
            existing.append(ParquetFile(literal_path(str(path)), has_id))
            names[existing[0].sql_path] = path
        part = Part(raw=raw_files, compacted=existing, dedup=True)
        reader = Reader([part], names, Window(), self.budget, workdir, salvage=False)
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
        columns = [*FIELDS, EVENT_ID]
        while True:
            counts = Counts()
            writer = _writer(target)
            pending: list[pa.RecordBatch] = []
            rows = 0
            try:
                for batch in reader.batches(FIELDS, counts, with_ids=True):
                    pending.append(batch.select(columns))
                    rows += batch.num_rows
                    if rows >= ROW_GROUP_ROWS:
                        writer.write_table(_row_group(pending))
                        pending, rows = [], 0
                if pending:
                    writer.write_table(_row_group(pending))
            except ReadFailure as failure:
                writer.close()
                # Each repair rewrites or rejects one more file, so this ends.
                if reader.repair(failure):
                    continue
                raise
            writer.add_key_value_metadata(metadata())
            writer.close()
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


# zstd; dictionaries except for `event_id`, unique per event, which shares long prefixes
# with its neighbours (DELTA_BYTE_ARRAY stores only what differs).
_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": [name for name in COMPACTED_SCHEMA.names if name != EVENT_ID],
    "column_encoding": {EVENT_ID: "DELTA_BYTE_ARRAY"},
    "data_page_version": "2.0",
}


def _writer(target: Path) -> pq.ParquetWriter:
    return pq.ParquetWriter(target, COMPACTED_SCHEMA, **_WRITE_OPTIONS)


def _row_group(batches: list[pa.RecordBatch]) -> pa.Table:
    """One row group, sorted by identity: neighbours share prefixes, and compress better."""
    table = pa.Table.from_batches(batches).cast(COMPACTED_SCHEMA)
    return table.sort_by([(EVENT_ID, "ascending"), ("time_local", "ascending")])
