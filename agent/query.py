"""`query`: SQL over a node's log folder or an archive, as a read-only `logs` relation.

Two DuckDB databases in one process: the trusted reader (agent/stream.py) opens the files and
streams validated events; the sandbox (agent/sandbox.py) runs the user's single SELECT over
that stream and can touch no file at all. Events are never loaded into a table first, so
memory stays flat however many events there are. The stream passes from one database to the
other as Arrow C data (agent/cstream.py): a query imports neither pyarrow nor, unless it
de-duplicates an archive on the way to the sandbox, numpy. A named query is our SQL, not the
user's: the reader answers it alone (`_run_trusted`), de-duplicating archives in SQL, unless
there is so much to de-duplicate that the sandbox's way is cheaper (SQL_DEDUP_BYTES).
"""

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import duckdb

from agent import exiting, sandbox
from agent.budget import Budget
from agent.discover import (
    ArchiveHour,
    InputError,
    Layout,
    Selection,
    Window,
    gzip_size,
    select_files,
)
from agent.events import ParquetFile, RawFile, identities_sql, literal_path
from agent.named import NamedQuery
from agent.sandbox import Cancelled, Limits, QueryError, bounded, check_rows
from agent.stream import Counts, Part, Reader, ReadFailure, connect, memory_limit

__all__ = ["Cancelled", "Limits", "QueryError", "Result", "Trusted", "run_query"]

# An archive part is de-duplicated as one; its identities take 16 bytes per event.
DEDUP_PART_BYTES = 768 << 20
# Up to this much NDJSON to de-duplicate, a named query does it in the reader's SQL (no numpy
# import, no second database: about 60 ms less per process); beyond, on the way to the
# sandbox, whose identity set costs less per event than a hash aggregate carrying the query's
# columns. Measured (docs/bench-agent.md): at 157 MB (a 438K-event hour) the SQL way took
# 0.49 s against 0.59 s; at 358 MB, 0.81 against 0.87 s for referrers but 1.03 against 0.94 s
# for user agents; at 1.07 GB and above the sandbox's way was faster for both.
SQL_DEDUP_BYTES = 192 << 20
# The reader's share of the query's memory (agent/budget.py) when the sandbox reads its
# stream (the sandbox keeps the whole `--memory-limit` for user SQL): a quarter to stream a
# node's folder, a half to stream and de-duplicate an archive. Measured on the 6M-event bench
# (docs/bench-agent.md) with a 1 GiB budget: a half took the raw day from 4.03 s to 3.64 s
# (1.59x to 1.44x the plain query; DuckDB faulted 425K pages in at a quarter, 152K at a half)
# and its peak to 348 MiB; on a node folder it saved 5 % but took the peak from 216 MiB to
# 281-299 MiB, too close to a node's 300 MiB. Below a budget of 512 MiB both shares are the
# reader's floor (agent/budget.py), hence the batch job's 2GB (jobs/queries/batch/).
STREAMING_SHARE = 4
DEDUP_SHARE = 2
# The reader's least beside the sandbox. Streaming, it holds nothing of its own (no aggregate;
# an archive's identities are numpy's), so its memory is its threads' read buffers (32 MiB
# each) whatever its limit. The limit still sets how often DuckDB hands freed buffers back to
# the OS (`BlockAllocator::TryFlushDeallocated` flushes every allocator arena once they no
# longer fit under it beside those in use: seen with uprobes on DuckDB 2.0.1), after which the
# next buffers are faulted in again. The sandbox's thread that pulls the stream reads files
# too, so more buffers are in use at once than in a named query, which never flushed. Flushes
# in the middle of a node `--sql` query at 256 MiB: 2-4 at 1M events, 9 at 3M, 5 at 6M; at
# 384 MiB: 0, 2, 4 (docs/bench-agent.md). 512 MiB stopped them all but took a node query's
# peak to 286 MiB, against its 300 MiB; 384 MiB took it from 208 to at most 250 MiB.
SANDBOX_READER_FLOOR = 384 << 20
# The sandbox's threads for a named query that goes its way: one aggregate over one stream,
# which a second thread only takes turns to pull (reading files with the reader's threads while
# it does). One thread was 2-4 % faster over the 1M, 3M and 6M raw days and peaked 40-64 MiB
# lower (docs/bench-agent.md). User SQL keeps `--threads`: a window function took 10 % longer
# on one.
NAMED_SANDBOX_THREADS = 1
_COMPACTED_ROW_BYTES = 400


@dataclass(frozen=True)
class Trusted:
    """A named query (agent/named.py) the reader may run in its own database: its answer or,
    with `partial`, its groups before HAVING/ORDER BY/LIMIT (`query --partial`)."""

    query: NamedQuery
    partial: bool = False


@dataclass(frozen=True)
class Result:
    """Column names and rows of a query."""

    columns: list[str]
    rows: list[tuple[object, ...]]


# DEFLATE cannot expand data more than this; a gzip trailer claiming more is damage.
_MAX_GZIP_RATIO = 1032


def _raw_size(path: Path) -> int:
    """About how much NDJSON a gzip file holds: what its trailer records, kept between its
    own size and DEFLATE's limit (the trailer is the size mod 2**32, and a truncated file's
    last bytes are no trailer at all)."""
    try:
        with path.open("rb") as source:
            compressed = os.fstat(source.fileno()).st_size
            recorded = gzip_size(source.fileno()) or compressed
    except OSError:
        return 0
    return min(max(recorded, compressed), compressed * _MAX_GZIP_RATIO)


def plan_parts(selection: Selection) -> tuple[list[Part], dict[str, Path]]:
    """The reader's parts and, for messages, each DuckDB path's real file."""
    names: dict[str, Path] = {}
    if selection.layout is Layout.NODE:
        raw = [RawFile(f.sql_path, f.gzip) for f in selection.node_files]
        names.update({f.sql_path: f.path for f in selection.node_files})
        return [Part(raw=raw)], names
    compacted_only = Part()
    parts = [compacted_only]
    current: Part | None = None
    for hour in selection.hours:
        compacted = _compacted(hour, names)
        if not hour.raw:
            compacted_only.compacted.extend(compacted)
            continue
        size = sum(_raw_size(p) for p in hour.raw)
        size += sum(c.rows for c in [hour.compacted] if c) * _COMPACTED_ROW_BYTES
        if current is None or current.size + size > DEDUP_PART_BYTES:
            current = Part(dedup=True)
            parts.append(current)
        current.size += size
        current.compacted.extend(compacted)
        for path in hour.raw:
            sql_path = literal_path(str(path.resolve()))
            names[sql_path] = path
            current.raw.append(RawFile(sql_path, gzip=True))
    return parts, names


def _compacted(hour: ArchiveHour, names: dict[str, Path]) -> list[ParquetFile]:
    if hour.compacted is None:
        return []
    sql_path = literal_path(str(hour.compacted.path.resolve()))
    names[sql_path] = hour.compacted.path
    return [ParquetFile(sql_path, hour.compacted.ids)]


def run_query(
    logs: Path,
    sql: str,
    parameters: Mapping[str, object],
    window: Window,
    diagnostics: TextIO,
    limits: Limits | None = None,
    layout: Layout = Layout.AUTO,
    trusted: Trusted | None = None,
) -> Result:
    """Run `sql` over the events under `logs` inside `window`; notes go to `diagnostics`.

    With `trusted` (the named query `sql` is the text of, when it has GROUP BY keys), the
    reader answers it itself (`_run_trusted`) unless more than SQL_DEDUP_BYTES of raw archive
    objects are to be de-duplicated; otherwise `sql` runs in the sandbox. Raises QueryError:
    bad SQL, a limit reached, or input that cannot be read.
    """
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="agent-query-") as scratch:
        budget = Budget(limits.memory_bytes, limits.threads)
        con = connect(budget.reader(share=STREAMING_SHARE), Path(scratch))
        try:
            selection = select_files(logs, window, con, layout)
        except InputError as error:
            con.close()
            raise QueryError(str(error)) from None
        try:
            parts, names = plan_parts(selection)
            reader = Reader(con, parts, names, window, Path(scratch))
            try:
                to_dedup = sum(part.size for part in parts if part.dedup)
                sandbox_limits = limits
                if trusted is not None and not (trusted.query.keys and to_dedup <= SQL_DEDUP_BYTES):
                    trusted = None  # the sandbox's way
                    sandbox_limits = replace(limits, threads=NAMED_SANDBOX_THREADS)
                reader_budget = _reader_budget(budget, trusted, to_dedup)
                con.execute(f"SET memory_limit = '{memory_limit(reader_budget)}'")
                if trusted is not None:
                    return _run_trusted(reader, selection, trusted, parameters, limits, diagnostics)
                return _run(reader, selection, sql, parameters, sandbox_limits, diagnostics)
            finally:
                exiting.release(reader)
        finally:
            selection.close()


def _reader_budget(budget: Budget, trusted: Trusted | None, to_dedup: int) -> Budget:
    """The reader's part of `budget`: all of it when it answers alone, without a sandbox;
    beside the sandbox, its share (STREAMING_SHARE, DEDUP_SHARE) and at least
    SANDBOX_READER_FLOOR."""
    if trusted is not None:
        return budget.reader(share=1)
    share = DEDUP_SHARE if to_dedup else STREAMING_SHARE
    return budget.reader(share, floor=SANDBOX_READER_FLOOR)


def _with_repairs(reader: Reader, attempt: Callable[[], Result]) -> Result:
    """`attempt()` until no file it reads is damaged: a ReadFailure names the file, which the
    reader repairs (rewrites, or rejects) before the next attempt. A file is repaired once, so
    there are never more attempts than files."""
    for _ in range(len(reader.names) + 1):
        try:
            return attempt()
        except ReadFailure as failure:
            if not reader.repair(failure):
                raise QueryError(f"cannot read the logs: {failure}") from None
    raise QueryError("too many damaged files")


def _run(
    reader: Reader,
    selection: Selection,
    sql: str,
    parameters: Mapping[str, object],
    limits: Limits,
    diagnostics: TextIO,
) -> Result:
    first = sandbox.connect(limits)
    columns = sandbox.needed_columns(sql, first)
    # sandbox.run is done with its database (closed, or left for the exit: agent/exiting.py):
    # a repeated attempt needs a new one.
    unused = [first]

    def attempt() -> Result:
        sandboxed = unused.pop() if unused else sandbox.connect(limits)
        stream = reader.stream(columns)
        try:
            names, rows = sandbox.run(
                stream, columns, sql, parameters, limits, reader.interrupt, sandboxed
            )
        except duckdb.Error as error:
            failure = stream.failed()
            if failure is not None:
                raise failure from None
            raise QueryError(str(error)) from None
        finally:
            stream.close()
        _report(diagnostics, selection, reader, stream.complete)
        return Result(names, rows)

    return _with_repairs(reader, attempt)


def _run_trusted(
    reader: Reader,
    selection: Selection,
    trusted: Trusted,
    parameters: Mapping[str, object],
    limits: Limits,
    diagnostics: TextIO,
) -> Result:
    """A named query in the reader's own database, where no row has to cross to the sandbox:
    one scan groups the events and counts the malformed lines (NamedQuery.grouping_sql), into
    a table of groups the answer is read from. Its SQL is ours, never the user's, so it may
    run where files can be read. Raw archive objects are de-duplicated on the way, in SQL
    (agent/events.py `identities_sql`): one hash aggregate by identity per part, where the
    sandbox's path keeps a set in Python (agent/dedup.py); both count the same
    (tests/agent/test_agent_trusted.py), and this one needs neither numpy nor a second
    database."""
    query = trusted.query
    cursor = reader.cursor()
    columns = sandbox.needed_columns(query.sql(), cursor)

    def attempt() -> Result:
        found = reader.sources(columns, with_ids=False)[1:]
        # Compacted rows were validated and de-duplicated when they were written.
        valid_only = not any(part.raw or part.dedup for part in reader.parts)
        if valid_only:
            source = " UNION ALL ".join(f"({sql})" for _, sql in found)
            grouping = query.valid_grouping_sql(source)
        else:
            events = (
                identities_sql(sql, columns, part is not None and part.dedup) for part, sql in found
            )
            grouping = query.grouping_sql(" UNION ALL ".join(f"({sql})" for sql in events))
        _group(cursor, grouping, limits, reader.interrupt)
        if valid_only:
            (valid,) = cursor.execute(f"SELECT count(*) FROM ({source})").fetchone() or (0,)
            counts = Counts(events=valid)
        else:
            counted = {
                ok: (int(kept), int(lines))
                for ok, kept, lines in cursor.execute(
                    f"SELECT __ok, sum(__rows), sum(__lines) FROM {_GROUPS} WHERE __set = 1 "
                    "GROUP BY __ok"
                ).fetchall()
            }
            # An event's copies are one row of the groups: the lines beyond it were copies.
            valid, lines = counted.get(True, (0, 0))
            malformed = counted.get(False, (0, 0))[1]
            counts = Counts(valid, malformed=malformed, duplicates=lines - valid)
        answer = cursor.execute(query.from_groups(_GROUPS, trusted.partial), dict(parameters))
        rows = answer.fetchmany(limits.max_rows + 1)
        check_rows(rows, limits)
        _report(diagnostics, selection, reader, counts)
        return Result([d[0] for d in answer.description or []], rows)

    return _with_repairs(reader, attempt)


_GROUPS = "named_groups"


def _group(
    cursor: duckdb.DuckDBPyConnection,
    grouping_sql: str,
    limits: Limits,
    interrupt: Callable[[], None],
) -> None:
    """Run `grouping_sql` into the groups table within `limits`; a failure that is not a
    bound is the read's (ReadFailure), the SQL being ours."""
    try:
        with bounded(limits, interrupt):
            cursor.execute(f"CREATE OR REPLACE TEMP TABLE {_GROUPS} AS {grouping_sql}")
    except duckdb.Error as error:
        raise ReadFailure(error) from None


def _report(
    diagnostics: TextIO, selection: Selection, reader: Reader, counts: Counts | None
) -> None:
    layout = "archive" if selection.layout is Layout.ARCHIVE else "log folder"
    partial = ""
    if counts is None:
        counts = Counts()
        partial = " (the query stopped before reading every event; counts are not totals)"
    malformed = counts.malformed + reader.oversized_lines
    line = (
        f"query: {layout}: read {selection.file_count} files, pruned {selection.pruned} outside "
        f"the window, {counts.events} events, {malformed} malformed lines skipped"
    )
    if selection.layout is Layout.ARCHIVE:
        line += f", {counts.duplicates} duplicate events removed"
    diagnostics.write(line + partial + "\n")
    for note in selection.notes:
        diagnostics.write(f"query: warning: {note}\n")
    for path, problem in sorted(reader.damaged.items()):
        diagnostics.write(f"query: warning: {path}: {problem}; read what came before it\n")
    if reader.oversized_lines:
        diagnostics.write(
            f"query: warning: {reader.oversized_lines} lines over 16 MiB were skipped "
            "(counted as malformed)\n"
        )
