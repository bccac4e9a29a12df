"""`query`: DuckDB over a node's log folder or an archive root, as a read-only `logs` view.

The selected files are loaded into an in-memory table first, then DuckDB's file system access
is switched off and the configuration locked, so custom SQL cannot read (or write) any path,
the logs path included. Custom SQL must be a single SELECT.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import duckdb

from agent.discover import Selection, Window, select_files
from agent.load import TABLE, LoadReport, create_table, load_ndjson, load_parquet, run

_READ_ONLY = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)


class QueryError(Exception):
    """A query that cannot run: bad SQL or a statement that is not read-only."""


@dataclass(frozen=True)
class Result:
    """Column names and rows of a query."""

    columns: list[str]
    rows: list[tuple[object, ...]]


def _load(con: duckdb.DuckDBPyConnection, selection: Selection) -> LoadReport:
    """Load the selection into TABLE, counting each event once.

    In the archive the shipper delivers at least once, so raw events are de-duplicated and
    those already in an hour's compacted file are dropped. A node folder needs neither:
    rotation renames files, it never copies them.
    """
    create_table(con)
    compacted = load_parquet(con, selection.parquet)
    if not selection.archive:
        report = load_ndjson(con, selection.plain, selection.gzipped)
        report.events += compacted
        return report
    create_table(con, "_raw")
    report = load_ndjson(con, selection.plain, selection.gzipped, table="_raw")
    if report.events:
        run(con, f"INSERT INTO {TABLE} SELECT * FROM _raw EXCEPT SELECT * FROM {TABLE}")
    run(con, "DROP TABLE _raw")
    rows = run(con, f"SELECT count(*) FROM {TABLE}")
    report.events = int(str(rows[0][0]))
    return report


def _create_view(con: duckdb.DuckDBPyConnection, window: Window) -> None:
    bounds = []
    if window.since is not None:
        bounds.append(f"time_local >= TIMESTAMP '{window.since.isoformat(sep=' ')}'")
    if window.until is not None:
        bounds.append(f"time_local < TIMESTAMP '{window.until.isoformat(sep=' ')}'")
    where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
    run(con, f"CREATE VIEW logs AS SELECT * FROM {TABLE}{where}")


def _lock(con: duckdb.DuckDBPyConnection) -> None:
    run(con, "SET enable_external_access = false")
    run(con, "SET lock_configuration = true")


def _check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryError(str(error)) from None
    if len(statements) != 1:
        raise QueryError(f"expected exactly one SQL statement, got {len(statements)}")
    if statements[0].type not in _READ_ONLY:
        raise QueryError(f"only SELECT queries are allowed, not {statements[0].type.name}")


def run_query(
    logs: Path,
    sql: str,
    parameters: Mapping[str, object],
    window: Window,
    diagnostics: TextIO,
) -> Result:
    """Run `sql` over the events under `logs` inside `window`; notes go to `diagnostics`."""
    selection = select_files(logs, window)
    con = duckdb.connect(":memory:")
    try:
        report = _load(con, selection)
        _create_view(con, window)
        _lock(con)
        _report(diagnostics, selection, report)
        _check_read_only(con, sql)
        try:
            cursor = con.execute(sql, dict(parameters) or None)
            rows = cursor.fetchall()
        except duckdb.Error as error:
            raise QueryError(str(error)) from None
        columns = [d[0] for d in cursor.description or []]
        return Result(columns, rows)
    finally:
        con.close()


def _report(diagnostics: TextIO, selection: Selection, report: LoadReport) -> None:
    read = len(selection.plain) + len(selection.gzipped) + len(selection.parquet)
    layout = "archive" if selection.archive else "log folder"
    diagnostics.write(
        f"query: {layout}: read {read} files, pruned {selection.pruned} outside the window, "
        f"{report.events} events, {report.malformed_lines} malformed lines skipped\n"
    )
    for path, problem in sorted(report.damaged_files.items()):
        diagnostics.write(f"query: warning: {path}: {problem}; read what came before it\n")
