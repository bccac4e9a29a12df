"""The trusted reader: files in, validated and de-duplicated events out, as an Arrow C stream.

Only this DuckDB connection can open files. It runs one query per *part* (a node folder, or a
batch of archive hours); their result streams are chained into one (agent/cstream.py) and go
straight to the sandbox's DuckDB, batch by batch, without pyarrow and without Python touching
a value. Every row carries `_ok`: the sandbox's `logs` view keeps only rows where it is set.
On the way, each batch is counted: rows without `_ok` are malformed lines; in a part that is
de-duplicated, the `_ok` flag of a re-delivered event is cleared (its identity hashes are
already in the part's set, agent/dedup.py). Nothing is loaded into a table, so memory does
not grow with the data: the identities of one part's events (16 bytes each) are the only state.

A read that fails on one file (a damaged gzip, a line too long for DuckDB) names the file; the
caller repairs it (`repair`: the file is rewritten without the damage, or rejected) and runs
the query again from the start, so rows already handed on are never counted twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from agent.budget import Budget
from agent.cstream import ArrowSchema, Batch, ChainedStream, StreamError, release_array
from agent.discover import Window
from agent.events import (
    EVENT_ID,
    HASH_1,
    HASH_2,
    OK,
    ParquetFile,
    RawFile,
    empty_sql,
    literal_path,
    part_sql,
)
from agent.sanitize import sanitize

if TYPE_CHECKING:
    import pyarrow as pa

    from agent.dedup import SeenKeys

# Rows per batch handed to the compactor.
BATCH_ROWS = 1 << 16


@dataclass
class Part:
    """Files read by one query; with `dedup`, re-delivered events are dropped within it.
    `size`: about how many bytes of NDJSON its files hold."""

    raw: list[RawFile] = field(default_factory=list)
    compacted: list[ParquetFile] = field(default_factory=list)
    dedup: bool = False
    size: int = 0


@dataclass
class Counts:
    """What one full pass over the parts saw."""

    events: int = 0
    malformed: int = 0
    duplicates: int = 0


class ReadFailure(Exception):
    """A trusted read failed; the message is DuckDB's."""

    def __init__(self, error: Exception | str) -> None:
        text = str(error)
        super().__init__(text.splitlines()[0] if text else type(error).__name__)


def memory_limit(budget: Budget) -> str:
    """`budget`'s memory as DuckDB's `memory_limit` setting."""
    return f"{budget.memory_bytes // (1 << 20)}MiB"


def connect(budget: Budget, scratch: Path) -> duckdb.DuckDBPyConnection:
    """The trusted reader's database: it may open files, within `budget`, spilling to
    `scratch`."""
    return duckdb.connect(
        ":memory:",
        config={
            "threads": budget.threads,
            "memory_limit": memory_limit(budget),
            "temp_directory": str(scratch / "spill"),
            "preserve_insertion_order": False,
            "python_enable_replacements": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        },
    )


class Reader:
    """A DuckDB connection with file access (`con`, from `connect`) and the parts it reads.

    `names` maps every path DuckDB is given to the file's real path, for messages; with
    `salvage`, a damaged gzip file contributes the lines before the damage, without, none.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        parts: list[Part],
        names: dict[str, Path],
        window: Window,
        scratch: Path,
        salvage: bool = True,
    ) -> None:
        self.con = con
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

    def close(self) -> None:
        for cursor in self._cursors:
            cursor.close()
        self._cursors.clear()
        self.con.close()

    def interrupt(self) -> None:
        for cursor in list(self._cursors):
            cursor.interrupt()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of the reader's database that `interrupt` reaches."""
        cursor = self.con.cursor()
        self._cursors.append(cursor)
        return cursor

    def stream(
        self, columns: Sequence[str], with_ids: bool = False, batch_rows: int | None = None
    ) -> EventStream:
        """The events' `columns` (plus `_ok` and, where parts de-duplicate, the identity
        hashes and with `with_ids` `event_id`), as an Arrow stream object."""
        return EventStream(self, list(columns), with_ids, batch_rows)

    def sources(self, columns: Sequence[str], with_ids: bool) -> list[tuple[Part | None, str]]:
        """The SQL of no rows with a read's columns, then each non-empty part and its SQL
        (the empty query again when there is none)."""
        hashes = any(p.dedup for p in self.parts if p.raw or p.compacted)
        selected = [*columns, EVENT_ID] if with_ids else list(columns)
        found: list[tuple[Part | None, str]] = [(None, empty_sql(selected, hashes))]
        for part in self.parts:
            if part.raw or part.compacted:
                sql = part_sql(
                    part.raw, part.compacted, selected, part.dedup, self.window.since,
                    self.window.until, hash_columns=hashes, with_event_id=with_ids,
                )  # fmt: skip
                found.append((part, sql))
        return found if len(found) > 1 else found * 2

    def open(self, sql: str, batch_rows: int | None = None) -> object:
        """One query's result stream (a capsule), on a cursor of its own: a stream holds
        its connection until it is read out, and two passes may be read at once.

        With `batch_rows` the result comes through pyarrow in batches of that many rows
        (the compactor's); without, as DuckDB's chunks, with no pyarrow at all.
        """
        relation = self.cursor().sql(sql)
        if batch_rows is None:
            return relation.__arrow_c_stream__()
        return relation.to_arrow_reader(batch_rows).__arrow_c_stream__()

    def schema(self, empty: str) -> object:
        """The result stream of a query of no rows (`empty`): a schema, cheaply."""
        cursor = self.con.cursor()
        try:
            return cursor.sql(empty).__arrow_c_stream__()
        finally:
            cursor.close()

    def batches(
        self, columns: Sequence[str], counts: Counts, with_ids: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """Event rows (`columns`, then `event_id` with `with_ids`) of every part, as pyarrow
        batches (the compactor's); `counts` gets what the pass saw.

        Raises ReadFailure when DuckDB cannot read a file; `repair` it and start again.
        """
        import ctypes

        import pyarrow as pa

        selected = [*columns, EVENT_ID] if with_ids else list(columns)
        stream = self.stream(columns, with_ids, BATCH_ROWS)
        chained = stream.new_pass()
        pending: list[pa.RecordBatch] = []
        rows = 0
        arrays = chained.arrays()
        try:
            schema_struct = ArrowSchema()
            chained.schema_into(ctypes.addressof(schema_struct))
            schema = pa.Schema._import_from_c(ctypes.addressof(schema_struct))
            for array in arrays:
                try:
                    batch = pa.RecordBatch._import_from_c(ctypes.addressof(array), schema)
                finally:
                    release_array(array)  # moved into pyarrow unless that failed
                ok = batch.column(OK)
                kept = batch.select(selected)
                if ok.true_count < batch.num_rows:  # a filter copies every column
                    kept = kept.filter(ok)
                if kept.num_rows >= BATCH_ROWS // 2 and not pending:
                    yield kept
                    continue
                pending.append(kept)
                rows += kept.num_rows
                # Small batches (a file's last rows) are handed on together: each would
                # carry its own copy of every dictionary the writer builds.
                if rows >= BATCH_ROWS:
                    yield pa.concat_batches(pending)
                    pending, rows = [], 0
            if pending:
                yield pa.concat_batches(pending)
        except StreamError as error:
            raise ReadFailure(error) from None
        finally:
            arrays.close()
            stream.close()
        complete = stream.complete or Counts()
        counts.events, counts.malformed = complete.events, complete.malformed
        counts.duplicates = complete.duplicates

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


class _Pass:
    """One read of every part: counts what it sees and drops re-delivered events."""

    def __init__(self, parts: list[Part | None], on_end: Callable[[Counts], None]) -> None:
        self.parts = parts
        self.counts = Counts()
        self.on_end = on_end
        self._seen: tuple[int, SeenKeys] | None = None

    def batches(self, index: int, batches: list[Batch]) -> None:
        valid = sum(b.ones(OK) for b in batches)
        self.counts.malformed += sum(b.length for b in batches) - valid
        part = self.parts[index]
        if part is not None and part.dedup and valid:
            kept = self._first_seen(index, batches)
            self.counts.duplicates += valid - kept
            valid = kept
        self.counts.events += valid

    def _first_seen(self, index: int, batches: list[Batch]) -> int:
        """Clear the `_ok` flag of every event whose identity this part has already seen;
        the events kept."""
        import numpy as np

        if self._seen is None or self._seen[0] != index:
            from agent.dedup import SeenKeys  # numpy: only archives are de-duplicated

            self._seen = (index, SeenKeys())  # parts are read one after the other
        ok = np.concatenate([b.mask(OK) for b in batches])
        rows = np.flatnonzero(ok)
        h1 = np.concatenate([b.uint64(HASH_1) for b in batches])[rows]
        h2 = np.concatenate([b.uint64(HASH_2) for b in batches])[rows]
        first = self._seen[1].first_seen(h1, h2)
        if not first.all():
            dropped = rows[~first]
            ok[dropped] = False
            bounds = np.cumsum([0, *(b.length for b in batches)])
            touched = set(np.searchsorted(bounds, dropped, side="right").tolist())
            for number in touched:
                start, end = bounds[number - 1], bounds[number]
                batches[number - 1].set_mask(OK, ok[start:end])
        return int(np.count_nonzero(first))

    def end(self) -> None:
        self._seen = None
        self.on_end(self.counts)


class EventStream:
    """The rows of the trusted reader: each scan (`__arrow_c_stream__`) is a new pass.

    Implements the Arrow PyCapsule interface; DuckDB asks for a stream for the schema too,
    which opens the first part's query but reads nothing. The first pass that runs to its
    end gives the counts reported; the first failure is kept for `Reader.repair`.
    """

    def __init__(
        self, reader: Reader, columns: list[str], with_ids: bool, batch_rows: int | None
    ) -> None:
        self.reader = reader
        self.batch_rows = batch_rows
        self.complete: Counts | None = None
        (_, self._empty), *self._sources = reader.sources(columns, with_ids)
        self._streams: list[ChainedStream] = []

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self.new_pass().capsule()

    def new_pass(self) -> ChainedStream:
        """A new read of every part, counted (`complete`) once it reaches the end."""
        read = _Pass([part for part, _ in self._sources], self._ended)

        def opener(sql: str) -> Callable[[], object]:
            return lambda: self.reader.open(sql, self.batch_rows)

        sources = [opener(sql) for _, sql in self._sources]
        stream = ChainedStream(
            lambda: self.reader.schema(self._empty), sources, read.batches, read.end
        )
        self._streams.append(stream)
        return stream

    def _ended(self, counts: Counts) -> None:
        if self.complete is None:
            self.complete = counts

    def close(self) -> None:
        for stream in self._streams:
            stream.close()

    def failed(self) -> ReadFailure | None:
        """The first read failure of any pass so far (closed or not)."""
        for stream in self._streams:
            if stream.failure is not None:
                return ReadFailure(stream.failure)
        return None
