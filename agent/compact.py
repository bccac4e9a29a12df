"""`compact`: turn each closed hour of raw archive objects into one `compacted.parquet`.

Decisions, and why:
- Progress lives in the output itself: `compacted.parquet` records in its Parquet metadata the
  raw objects it holds (`bacalhau_logs.sources`). An hour is pending when a raw object is
  neither there nor in `bacalhau_logs.rejected` with the same ETag, so a re-run over an
  unchanged hour reads one footer and writes nothing.
- A rebuild merges the existing compacted rows with the new raw objects only. Raw objects are
  aged out by lifecycle rules, so rebuilding from what is still listed would lose events.
- The file is written with one PutObject, which S3 makes visible all at once; raw objects are
  never deleted, so a crash at any point loses nothing and the next run redoes the hour.
- An object that cannot be fully decoded (not gzip, truncated) contributes no rows and is
  kept out of `sources`: readers then still read it themselves and report it, rather than
  its events silently vanishing. It is recorded under `rejected` with its ETag, so it is
  not retried every run, but is if it is overwritten.
- Exact duplicates (at-least-once delivery) are removed. The event schema has no request id,
  so two genuinely identical requests in the same second also become one.
"""

import json
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from agent.archive import (
    COMPACTED_NAME,
    EVENT_SCHEMA,
    RAW_SUFFIX,
    REJECTED_KEY,
    Hour,
    decode_sources,
    encode_metadata,
    parse_hour_key,
)
from agent.load import TABLE, create_table, load_ndjson, load_parquet, run
from agent.s3 import S3Client, is_fatal
from agent.times import utc_now

_FOOTER_GUESS = 64 * 1024


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


@dataclass(frozen=True)
class Recorded:
    """What an hour's compacted file says it was built from."""

    sources: frozenset[str] = frozenset()
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


class Compactor:
    """Compacts the closed hours under `prefix` in `bucket`."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,
        grace: timedelta,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.grace = grace
        self.now = now

    def list_hours(self) -> list[HourObjects]:
        """Every hour in the layout with its raw objects and compacted file, oldest first."""
        hours: dict[Hour, HourObjects] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                parsed = parse_hour_key(item["Key"], self.prefix)
                if parsed is None:
                    continue
                hour, name = parsed
                objects = hours.setdefault(hour, HourObjects(hour))
                if name == COMPACTED_NAME:
                    objects.compacted_key = item["Key"]
                elif name.endswith(RAW_SUFFIX):
                    objects.raw[name] = RawObject(name, item["Key"], item["ETag"])
        return [hours[h] for h in sorted(hours)]

    def closed(self, hour: Hour) -> bool:
        """An hour is closed once its end plus the grace period has passed."""
        return hour.end + self.grace <= self.now()

    def recorded(self, key: str) -> Recorded:
        """Read a compacted file's metadata with ranged GETs of its footer only."""
        tail = self._get_range(key, f"bytes=-{_FOOTER_GUESS}")
        footer_length = struct.unpack("<I", tail[-8:-4])[0]
        if footer_length + 8 > len(tail):
            tail = self._get_range(key, f"bytes=-{footer_length + 8}")
        metadata = pq.read_metadata(pa.BufferReader(tail)).metadata or {}
        rejected = metadata.get(REJECTED_KEY.encode())
        return Recorded(
            frozenset(decode_sources(metadata)), json.loads(rejected) if rejected else {}
        )

    def _get_range(self, key: str, byte_range: str) -> bytes:
        response = self.client.get_object(Bucket=self.bucket, Key=key, Range=byte_range)
        return response["Body"].read()

    def pending(self, objects: HourObjects, recorded: Recorded) -> list[RawObject]:
        """Raw objects the compacted file does not account for."""
        return [
            raw
            for name, raw in sorted(objects.raw.items())
            if name not in recorded.sources and recorded.rejected.get(name) != raw.etag
        ]

    def compact_hour(self, objects: HourObjects) -> Outcome:
        """Bring one hour's compacted file up to date; writes only if something is pending."""
        recorded = self.recorded(objects.compacted_key) if objects.compacted_key else Recorded()
        pending = self.pending(objects, recorded)
        if not pending:
            return Outcome(objects.hour, written=False)
        with tempfile.TemporaryDirectory(prefix="agent-compact-") as scratch:
            workdir = Path(scratch)
            outcome, table = self._build(objects, recorded, pending, workdir)
            target = workdir / COMPACTED_NAME
            pq.write_table(table, target, compression="zstd")
            self._upload(objects.hour.prefix(self.prefix) + COMPACTED_NAME, target)
        return outcome

    def _build(
        self, objects: HourObjects, recorded: Recorded, pending: list[RawObject], workdir: Path
    ) -> tuple[Outcome, pa.Table]:
        """Merge the existing compacted rows with the pending raw objects, de-duplicated."""
        local: dict[Path, RawObject] = {}
        for raw in pending:
            path = workdir / f"raw-{len(local)}{RAW_SUFFIX}"
            self.client.download_file(self.bucket, raw.key, str(path))
            local[path] = raw
        con = duckdb.connect(":memory:")
        try:
            create_table(con)
            if objects.compacted_key:
                existing = workdir / "existing.parquet"
                self.client.download_file(self.bucket, objects.compacted_key, str(existing))
                load_parquet(con, [existing])
            report = load_ndjson(con, [], list(local), salvage=False)
            distinct = f"SELECT DISTINCT * FROM {TABLE} ORDER BY time_local"
            table = con.sql(distinct).to_arrow_table()
            total = int(str(run(con, f"SELECT count(*) FROM {TABLE}")[0][0]))
        finally:
            con.close()
        damaged = {local[Path(p)].name: local[Path(p)].etag for p in report.damaged_files}
        readable = [raw.name for raw in pending if raw.name not in damaged]
        examined = {raw.name for raw in pending}
        still_rejected = {k: v for k, v in recorded.rejected.items() if k not in examined}
        rejected = still_rejected | damaged
        sources = recorded.sources | set(readable)
        table = table.cast(EVENT_SCHEMA).replace_schema_metadata(encode_metadata(sources, rejected))
        outcome = Outcome(
            objects.hour,
            written=True,
            events=table.num_rows,
            duplicates=total - table.num_rows,
            malformed_lines=report.malformed_lines,
            new_sources=readable,
            rejected=damaged,
        )
        return outcome, table

    def _upload(self, key: str, path: Path) -> None:
        """One PutObject: S3 shows readers either the old object or the whole new one."""
        with path.open("rb") as body:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/vnd.apache.parquet"
            )

    def run_once(self, log: TextIO = sys.stderr) -> Summary:
        """Compact every closed hour that has something pending.

        An error confined to one hour is reported and the next hour tried; one that no hour
        can survive (credentials, missing bucket, unreachable endpoint) is raised.
        """
        summary = Summary()
        for objects in self.list_hours():
            if not objects.raw or not self.closed(objects.hour):
                continue
            try:
                outcome = self.compact_hour(objects)
            except (ClientError, BotoCoreError, OSError, duckdb.Error) as error:
                if isinstance(error, ClientError | BotoCoreError) and is_fatal(error):
                    raise
                log.write(f"compact: error: {objects.hour.prefix(self.prefix)}: {error}\n")
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
