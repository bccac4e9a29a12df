"""The DuckDB that runs the user's SQL: no files, bounded in time, memory and result size.

User SQL runs in its own in-memory DuckDB whose only data is the `logs` view over an Arrow
stream fed by the trusted reader (agent/stream.py): `logs` keeps the stream's rows whose `_ok`
flag is set. The stream itself also holds the rows the reader flagged (malformed lines, as far
as DuckDB parsed them, and re-delivered copies), so it is registered under a name made afresh
for every query (`_reader_rows_<32 random hex digits>`): one statement can list that name
(`duckdb_views()`) but not use it, since DuckDB's `query_table` and `query` take no subqueries
or columns, and the next query's name is another. Before any SQL runs, this database has
file system access switched off with no allowed paths, no temporary directory (DuckDB would
allow SQL to read it: spilling is off, a query that needs more memory fails with a message),
no extension loading, no scans of Python variables, and its configuration locked.
"""

from __future__ import annotations

import json
import secrets
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import duckdb

from agent import exiting
from agent.events import FIELDS, OK
from agent.signals import Cancellation

READER_ROWS_PREFIX = "_reader_rows_"

_READ_ONLY = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)


class QueryError(Exception):
    """A query that cannot run or did not finish: bad SQL, not read-only, over a limit."""


class Cancelled(QueryError):
    """The query was stopped by a signal (`signum`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass(frozen=True)
class Limits:
    """Bounds of one query (`--timeout`, `--memory-limit`, `--max-rows`)."""

    timeout_seconds: float = 600.0
    memory_bytes: int = 512 << 20
    threads: int = 2
    max_rows: int = 100_000
    # Set by SIGINT/SIGTERM (agent/signals.py): the query stops as it would at its timeout.
    cancellation: Cancellation | None = None


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def needed_columns(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> list[str]:
    """The `logs` columns `sql` may use, from DuckDB's own parse tree (no data touched).

    Over-approximates: any column reference with an event field's name counts, and `*`,
    `COLUMNS(...)`, a whole-row reference or a parse tree that cannot be read means all.
    Leaving a needed column out could only fail loudly (an unknown column), never answer
    wrongly, and the reader then parses only what the query uses.
    """
    own = con is None
    parser = duckdb.connect(":memory:", config={"enable_external_access": False}) if own else con
    assert parser is not None
    try:
        # fetchall: a result left open would hold the sandbox's connection.
        found = parser.execute("SELECT json_serialize_sql($sql)", {"sql": sql}).fetchall()
    except duckdb.Error:
        return list(FIELDS)
    finally:
        if own:
            parser.close()
    tree = json.loads(str(found[0][0])) if found else {"error": True}
    if tree.get("error"):
        return list(FIELDS)
    names: set[str] = set()
    aliases = {"logs"}
    for node in _walk(tree):
        if node.get("type") == "BASE_TABLE" and node.get("alias"):
            aliases.add(str(node["alias"]).lower())
    for node in _walk(tree):
        names.update(str(n).lower() for n in node.get("using_columns") or [])
        kind = node.get("class")
        if kind == "STAR":
            return list(FIELDS)
        if kind == "COLUMN_REF":
            parts = [str(p).lower() for p in node.get("column_names") or []]
            if len(parts) == 1 and parts[0] in aliases:
                return list(FIELDS)
            if parts:
                names.add(parts[-1])
    used = [f for f in FIELDS if f in names]
    # `count(*)` alone needs rows, not values: the cheapest column carries them.
    return used or ["status"]


def connect(limits: Limits) -> duckdb.DuckDBPyConnection:
    """A sandbox database, not yet locked: `run` locks it before user SQL runs."""
    return _connect(limits)


def _connect(limits: Limits) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(
        ":memory:",
        config={
            "threads": limits.threads,
            "memory_limit": f"{max(limits.memory_bytes >> 20, 64)}MiB",
            "temp_directory": "",
            "python_enable_replacements": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        },
    )


def _lock(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


@contextmanager
def bounded(limits: Limits, interrupt: Callable[[], None]) -> Iterator[None]:
    """Run the block within `limits`' `--timeout` and its cancellation (a signal): either
    calls `interrupt`, which must stop the block's DuckDB work, and a DuckDB error a bound
    caused becomes that bound's QueryError (`--memory-limit` too); other errors pass."""
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        interrupt()

    timer = threading.Timer(limits.timeout_seconds, stop)
    cancellation = limits.cancellation
    try:
        with cancellation.stopping(interrupt) if cancellation else nullcontext():
            if cancellation is not None and cancellation.signum is not None:
                raise Cancelled(cancellation.signum)  # came before there was a query
            timer.start()
            yield
    except duckdb.Error as error:
        reached = _bound_reached(error, limits, timed_out.is_set())
        if reached is not None:
            raise reached from None
        raise
    finally:
        timer.cancel()


def _bound_reached(error: duckdb.Error, limits: Limits, timed_out: bool) -> QueryError | None:
    """What a DuckDB error means when a query was stopped: a signal, `--memory-limit` or
    `--timeout` (None: none of them). An interrupted read can surface as the reader's error
    too, not only as DuckDB's InterruptException: the cancellation decides."""
    cancellation = limits.cancellation
    if cancellation is not None and cancellation.signum is not None:
        return Cancelled(cancellation.signum)
    if isinstance(error, duckdb.OutOfMemoryException):
        return QueryError(
            f"the query needs more than {limits.memory_bytes >> 20} MiB "
            "(--memory-limit); aggregate more, add a LIMIT or raise the limit"
        )
    if isinstance(error, duckdb.InterruptException) and timed_out:
        return QueryError(f"the query ran longer than {limits.timeout_seconds:g} s (--timeout)")
    return None


def check_rows(rows: Sequence[object], limits: Limits) -> None:
    if len(rows) > limits.max_rows:
        raise QueryError(
            f"the result has more than {limits.max_rows} rows (--max-rows); "
            "aggregate or add a LIMIT"
        )


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryError(str(error)) from None
    if len(statements) != 1:
        raise QueryError(f"expected exactly one SQL statement, got {len(statements)}")
    if statements[0].type not in _READ_ONLY:
        raise QueryError(f"only SELECT queries are allowed, not {statements[0].type.name}")


def run(
    rows: object,
    columns: Sequence[str],
    sql: str,
    parameters: Mapping[str, object],
    limits: Limits,
    on_timeout: Any = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> tuple[list[str], list[tuple[object, ...]]]:
    """Run one read-only statement over `logs`, the `columns` of `rows` (an Arrow stream
    object with an `_ok` column) whose `_ok` is set, within `limits`; `con` from `connect`,
    which is closed when it returns (or left for the process's exit, agent/exiting.py)."""
    con = con or _connect(limits)

    def interrupt() -> None:
        con.interrupt()
        if on_timeout is not None:
            on_timeout()

    try:
        reader_rows = READER_ROWS_PREFIX + secrets.token_hex(16)
        con.register(reader_rows, rows)
        listed = ", ".join(f'"{c}"' for c in columns)
        con.execute(f"CREATE TEMPORARY VIEW logs AS SELECT {listed} FROM {reader_rows} WHERE {OK}")
        _lock(con)
        check_read_only(con, sql)
        with bounded(limits, interrupt):
            cursor = con.execute(sql, dict(parameters) or None)
            rows = cursor.fetchmany(limits.max_rows + 1)
        check_rows(rows, limits)
        columns = [d[0] for d in cursor.description or []]
        return columns, rows
    finally:
        exiting.release(con)
