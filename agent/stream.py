"""The trusted reader: files in, validated and de-duplicated Arrow batches out, as a stream.

Only this DuckDB connection can open files. It runs one query per *part* (a node folder, or a
batch of archive hours) and hands Arrow batches on; Python counts and drops malformed rows and
re-delivered events between them. Nothing is loaded into a table, so memory does not grow with
the data: the identities of one part's events (16 bytes each) are the only state.

A read that fails on one file (a damaged gzip, a line too long for DuckDB) names the file; the
caller repairs it (`repair`: the file is rewritten without the damage, or rejected) and runs
the query again from the start, so rows already handed on are never counted twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from agent.budget import Budget
from agent.discover import Window
from agent.events import FIELDS, HASH_1, HASH_2, OK, ParquetFile, RawFile, literal_path, part_sql
from agent.sanitize import sanitize

if TYPE_CHECKING:
    from agent.dedup import SeenKeys

BATCH_ROWS = 1 << 16
ARROW_TYPES: dict[str, pa.DataType] = {
    **{name: pa.string() for name in FIELDS},
    "time_local": pa.timestamp("us"),
    "status": pa.int32(),
    "body_bytes_sent": pa.int64(),
    "event_id": pa.string(),
}


@dataclass
class Part:
    """Files read by one query; with `dedup`, re-delivered events are dropped within it."""

    raw: list[RawFile] = field(default_factory=list)
    compacted: list[ParquetFile] = field(default_factory=list)
    dedup: bool = False


@dataclass
class Counts:
    """What one full pass over the parts saw."""

    events: int = 0
    malformed: int = 0
    duplicates: int = 0


class ReadFailure(Exception):
    """A trusted read failed; the message is DuckDB's (through Arrow when streaming)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error).splitlines()[0] if str(error) else type(error).__name__)


class Reader:
    """A DuckDB connection with file access and the parts it reads.

    `names` maps every path DuckDB is given to the file's real path, for messages; with
    `salvage`, a damaged gzip file contributes the lines before the damage, without, none.
    """

    def __init__(
        self,
        parts: list[Part],
        names: dict[str, Path],
        window: Window,
        budget: Budget,
        scratch: Path,
        salvage: bool = True,
    ) -> None:
        self.parts = parts
        self.names = names
        self.window = window
        self.salvage = salvage
        self.scratch = scratch
        self.damaged: dict[Path, str] = {}
        self.oversized_lines = 0
        self._repaired: set[str] = set()
        self._copies = itertools.count()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        spill = scratch / "spill"
        self.con = duckdb.connect(
            ":memory:",
            config={
                "threads": budget.threads,
                "memory_limit": f"{budget.memory_bytes // (1 << 20)}MiB",
                "temp_directory": str(spill),
                "preserve_insertion_order": False,
                "python_enable_replacements": False,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            },
        )

    def close(self) -> None:
        self.con.close()

    def interrupt(self) -> None:
        for cursor in list(self._cursors):
            cursor.interrupt()

    def batches(
        self, columns: Sequence[str], counts: Counts, with_ids: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """Event rows (`columns`) of every part; counts what was skipped in `counts`.

        Raises ReadFailure when DuckDB cannot read a file; `repair` it and start again.
        """
        for part in self.parts:
            if not part.raw and not part.compacted:
                continue
            selected = [*columns, "event_id"] if with_ids and part.dedup else list(columns)
            sql = part_sql(
                part.raw, part.compacted, selected, part.dedup, self.window.since,
                self.window.until,
            )  # fmt: skip
            seen = _seen_keys() if part.dedup else None
            cursor = self.con.cursor()
            self._cursors.append(cursor)
            try:
                reader = cursor.sql(sql).to_arrow_reader(BATCH_ROWS)
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    yield from _events(batch, selected, seen, counts)
            except (duckdb.Error, pa.ArrowException, OSError) as error:
                # A streamed result reports DuckDB's errors as Arrow's (an OSError).
                raise ReadFailure(error) from None
            finally:
                self._cursors.remove(cursor)
                cursor.close()

    def repair(self, failure: ReadFailure) -> bool:
        """Rewrite (or, without salvage, reject) the raw file `failure` names; False if none.

        A file is repaired once: a second failure on its rewritten copy is not the file's.
        """
        message = str(failure)
        raw_paths = {raw.sql_path for part in self.parts for raw in part.raw}
        named = [p for p in raw_paths if p in message or str(self.names.get(p, "\0")) in message]
        if not named:
            return False
        sql_path = max(named, key=len)
        if sql_path in self._repaired:
            return False
        self._repaired.add(sql_path)
        for part in self.parts:
            for index, raw in enumerate(part.raw):
                if raw.sql_path == sql_path:
                    part.raw[index : index + 1] = self._rewrite(raw)
        return True

    def _rewrite(self, raw: RawFile) -> list[RawFile]:
        real = self.names[raw.sql_path]
        # Archive files are given to DuckDB by their escaped name; node files by descriptor.
        source = real if literal_path(str(real)) == raw.sql_path else Path(raw.sql_path)
        copy = self.scratch / f"readable-{next(self._copies)}.ndjson"
        result = sanitize(source, raw.gzip, copy)
        self.oversized_lines += result.oversized_lines
        if result.problem is not None:
            self.damaged[real] = result.problem
            if not self.salvage:
                copy.unlink()
                return []
        replacement = RawFile(str(copy), gzip=False)
        self.names[replacement.sql_path] = real
        self._repaired.add(replacement.sql_path)
        return [replacement]


def _seen_keys() -> SeenKeys:
    from agent.dedup import SeenKeys  # numpy: only archives are de-duplicated

    return SeenKeys()


def _events(
    batch: pa.RecordBatch, columns: Sequence[str], seen: SeenKeys | None, counts: Counts
) -> Iterator[pa.RecordBatch]:
    ok = batch.column(OK)
    valid = int(pc.sum(ok).as_py() or 0)
    counts.malformed += batch.num_rows - valid
    keep: Any = ok
    if seen is not None:
        first = seen.first_seen(_uint64(batch.column(HASH_1)), _uint64(batch.column(HASH_2)))
        keep = pc.and_(ok, pa.array(first))
        kept = int(pc.sum(keep).as_py() or 0)
        counts.duplicates += valid - kept
        valid = kept
    counts.events += valid
    if not valid:
        return
    arrays = [_typed(batch.column(c), c) for c in columns]
    out = pa.RecordBatch.from_arrays(arrays, names=list(columns))
    yield out if valid == batch.num_rows else out.filter(keep)


def _uint64(array: pa.Array) -> Any:
    # Malformed rows may hash NULL fields; their keys are never kept (`ok` is false).
    return pc.fill_null(array, 0).to_numpy(zero_copy_only=False)


def _typed(array: pa.Array, column: str) -> pa.Array:
    wanted = ARROW_TYPES[column]
    return array if array.type == wanted else array.cast(wanted)


def schema_of(columns: Sequence[str]) -> pa.Schema:
    return pa.schema([(c, ARROW_TYPES[c]) for c in columns])


class EventStream:
    """The `logs` relation of the sandbox: each scan is a new pass of the trusted reader.

    Implements the Arrow PyCapsule interface; DuckDB asks for the schema first, then a
    stream per scan. The first pass that runs to its end gives the counts reported.
    """

    def __init__(self, reader: Reader, columns: Sequence[str]) -> None:
        self.reader = reader
        self.columns = list(columns)
        self.schema = schema_of(self.columns)
        self.failure: ReadFailure | None = None
        self.complete: Counts | None = None
        self.scans = 0

    def __arrow_c_schema__(self) -> object:
        return self.schema.__arrow_c_schema__()

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        self.scans += 1
        stream = pa.RecordBatchReader.from_batches(self.schema, self._scan())
        return stream.__arrow_c_stream__(requested_schema)

    def _scan(self) -> Iterator[pa.RecordBatch]:
        counts = Counts()
        try:
            yield from self.reader.batches(self.columns, counts)
        except ReadFailure as failure:
            self.failure = failure
            raise
        if self.complete is None:
            self.complete = counts
