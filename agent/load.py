"""Load access-log files into a DuckDB table, skipping and counting what cannot be read.

Lines are read as opaque text and parsed with DuckDB's JSON functions, so one malformed line
costs one skipped row rather than a failed query. A gzip file that DuckDB cannot finish
(truncated, or not gzip at all) is re-read in Python up to the damage; the readable prefix
goes to a private temporary directory, never next to the original.
"""

import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from agent.archive import EVENT_COLUMNS

TABLE = "_events"
_DUCK_TYPES = {"time_local": "TIMESTAMP", "status": "INTEGER", "body_bytes_sent": "BIGINT"}
# json_transform_strict rejects a line with a missing field or a wrongly typed value;
# try() turns that into NULL, which is how a malformed line is recognised.
_JSON_SHAPE = (
    "{"
    + ", ".join(
        f'"{name}": "{"VARCHAR" if name == "time_local" else _DUCK_TYPES.get(name, "VARCHAR")}"'
        for name, _ in EVENT_COLUMNS
    )
    + "}"
)
_EVENT_SQL = ", ".join(
    "try_strptime(e.time_local, '%Y-%m-%dT%H:%M:%S') AS time_local"
    if name == "time_local"
    else f"e.{name} AS {name}"
    for name, _ in EVENT_COLUMNS
)
# One VARCHAR column per line: a delimiter that valid JSON never contains raw, no quoting.
_LINES_OPTIONS = (
    "columns = {'line': 'VARCHAR'}, delim = '\\x01', quote = '', escape = '', header = false, "
    "auto_detect = false, strict_mode = false, compression = '%s'"
)
_SALVAGE_CHUNK = 1 << 20


@dataclass
class LoadReport:
    """What loading found: counts for stderr and the files it could only partly read."""

    events: int = 0
    malformed_lines: int = 0
    damaged_files: dict[str, str] = field(default_factory=dict)


def create_table(con: duckdb.DuckDBPyConnection, table: str = TABLE) -> None:
    """Create the empty event table."""
    columns = ", ".join(f"{name} {_DUCK_TYPES.get(name, 'VARCHAR')}" for name, _ in EVENT_COLUMNS)
    run(con, f"CREATE OR REPLACE TABLE {table} ({columns})")


def _sql_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _insert_lines(
    con: duckdb.DuckDBPyConnection, table: str, paths: Sequence[Path], compression: str
) -> int:
    """Parse NDJSON files into `table`; returns the number of malformed lines.

    Malformed lines are inserted with a NULL time and then deleted (valid rows always have a
    time), so parsing is a single pass with no staging copy.
    """
    run(
        con,
        f"INSERT INTO {table} SELECT {_EVENT_SQL} FROM ("
        f"SELECT try(json_transform_strict(line, '{_JSON_SHAPE}')) AS e "
        f"FROM read_csv({_sql_list(paths)}, {_LINES_OPTIONS % compression}) "
        "WHERE line IS NOT NULL AND trim(line) <> '')",
    )
    malformed = _scalar(con, f"SELECT count(*) FROM {table} WHERE time_local IS NULL")
    if malformed:
        run(con, f"DELETE FROM {table} WHERE time_local IS NULL")
    return malformed


def run(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[object, ...]]:
    """Execute `sql` and fetch every row (DuckDB refuses new work while a result is open)."""
    return con.execute(sql).fetchall()


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    rows = run(con, sql)
    return int(str(rows[0][0])) if rows else 0


def salvage_gzip(path: Path, target: Path) -> tuple[int, str]:
    """Copy the readable decompressed prefix of `path` to `target`, whole lines only.

    Decompresses incrementally (gzip.open raises before handing over the last chunk read),
    member by member. Returns (bytes kept, what was wrong); called only for files DuckDB
    could not read, and a file that is not gzip at all keeps nothing.
    """
    kept = bytearray()
    decompressor = zlib.decompressobj(wbits=31)
    member_open = False
    problem = "truncated gzip"
    try:
        with path.open("rb") as source:
            while chunk := source.read(_SALVAGE_CHUNK):
                while chunk:
                    member_open = True
                    kept += decompressor.decompress(chunk)
                    chunk = b""
                    if decompressor.eof:
                        # Another gzip member may follow: continue with a fresh decompressor.
                        chunk = decompressor.unused_data
                        decompressor = zlib.decompressobj(wbits=31)
                        member_open = False
    except zlib.error as error:
        problem = f"not readable as gzip ({error})"
    if not member_open and problem == "truncated gzip":
        problem = "unreadable"
    end = kept.rfind(b"\n") + 1
    target.write_bytes(bytes(kept[:end]))
    return end, problem


def load_ndjson(
    con: duckdb.DuckDBPyConnection,
    plain: Sequence[Path],
    gzipped: Sequence[Path],
    table: str = TABLE,
    salvage: bool = True,
) -> LoadReport:
    """Append the events of plain and gzip NDJSON files to `table`.

    With `salvage`, a damaged gzip file contributes the lines before the damage; without,
    it contributes nothing (the compactor keeps such a file out of its sources instead).
    """
    report = LoadReport()
    before = _scalar(con, f"SELECT count(*) FROM {table}")
    if plain:
        report.malformed_lines += _insert_lines(con, table, plain, "none")
    if gzipped:
        try:
            report.malformed_lines += _insert_lines(con, table, gzipped, "gzip")
        except duckdb.IOException:
            # One bad file fails the whole statement (and inserts nothing): go file by file.
            for path in gzipped:
                report.malformed_lines += _load_one_gzip(con, table, path, report, salvage)
    report.events = _scalar(con, f"SELECT count(*) FROM {table}") - before
    return report


def _load_one_gzip(
    con: duckdb.DuckDBPyConnection, table: str, path: Path, report: LoadReport, salvage: bool
) -> int:
    try:
        return _insert_lines(con, table, [path], "gzip")
    except duckdb.IOException as error:
        if not salvage:
            report.damaged_files[str(path)] = str(error).splitlines()[0]
            return 0
    with tempfile.TemporaryDirectory(prefix="agent-salvage-") as scratch:
        readable = Path(scratch) / "prefix.ndjson"
        kept, problem = salvage_gzip(path, readable)
        report.damaged_files[str(path)] = problem
        return _insert_lines(con, table, [readable], "none") if kept else 0


def load_parquet(con: duckdb.DuckDBPyConnection, paths: Sequence[Path], table: str = TABLE) -> int:
    """Append compacted Parquet files to `table`; returns the number of events added."""
    if not paths:
        return 0
    columns = ", ".join(
        f"CAST({name} AS {_DUCK_TYPES.get(name, 'VARCHAR')})" for name, _ in EVENT_COLUMNS
    )
    before = _scalar(con, f"SELECT count(*) FROM {table}")
    run(con, f"INSERT INTO {table} SELECT {columns} FROM read_parquet({_sql_list(paths)})")
    return _scalar(con, f"SELECT count(*) FROM {table}") - before
