"""User SQL runs in a DuckDB that can touch no file, bounded in time, memory and rows.

The streaming design gives that database no file at all: the logs arrive as an Arrow stream
from a second, trusted DuckDB (agent/stream.py). These tests attack it from `--sql`.
"""

import io
from pathlib import Path

import duckdb
import pytest

import agent.sandbox
from agent.discover import Window
from agent.query import Limits, run_query
from tests.agent.conftest import event_line, record_sandboxes, run_agent, write_raw


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_raw(tmp_path / "logs" / "application.log", [event_line()] * 20)
    write_raw(tmp_path / "logs" / "application.log.2.gz", [event_line()] * 20)
    return tmp_path / "logs"


def _refused(folder: Path, sql: str, cwd: Path | None = None) -> str:
    args = ("query", "--logs", str(folder), "--sql", sql)
    result = run_agent(*args, check=False, **({"cwd": cwd} if cwd else {}))
    assert result.returncode == 1, (sql, result.stdout)
    assert result.stdout == ""
    assert result.stderr.startswith("query: error: ") and "Traceback" not in result.stderr
    return result.stderr


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('{folder}/application.log')",
        "SELECT * FROM read_blob('/proc/self/fd/3')",
        "SELECT * FROM '{folder}/application.log'",
        "SELECT * FROM glob('{folder}/*')",
        "SELECT * FROM query('SELECT * FROM read_text(''/etc/hostname'')')",
        "COPY (SELECT 1) TO '{folder}/out.csv'",
        "ATTACH '{folder}/x.db'",
        "DELETE FROM logs",
        "SET enable_external_access = true",
        "SET temp_directory = '/tmp'",
        "INSTALL httpfs",
        "SELECT 1; SELECT 2",
    ],
)
def test_sql_cannot_touch_files(folder: Path, sql: str) -> None:
    _refused(folder, sql.format(folder=folder))
    assert sorted(p.name for p in folder.iterdir()) == ["application.log", "application.log.2.gz"]


def test_temporary_directory_is_closed(folder: Path, tmp_path: Path) -> None:
    # DuckDB's default temp directory is <cwd>/.tmp and it allows SQL to read it.
    workdir = tmp_path / "work"
    (workdir / ".tmp").mkdir(parents=True)
    (workdir / ".tmp" / "secret.txt").write_text("secret\n")
    for path in (".tmp/secret.txt", f"{workdir}/.tmp/secret.txt"):
        stderr = _refused(folder, f"SELECT * FROM read_text('{path}')", cwd=workdir)
        assert "secret" not in stderr.replace("secret.txt", "")


def test_python_variables_are_not_tables(folder: Path) -> None:
    for name in ("stream", "reader", "selection", "sys"):
        _refused(folder, f"SELECT * FROM {name}")


def test_statement_timeout(folder: Path) -> None:
    stderr = _refused_with(folder, "SELECT count(*) FROM range(1000000000000000)", "--timeout", "1")
    assert "ran longer than 1 s (--timeout)" in stderr


def test_memory_limit(folder: Path) -> None:
    sql = "SELECT length(string_agg(repeat('x', 1000), ',')) FROM range(10000000)"
    stderr = _refused_with(folder, sql, "--memory-limit", "128MiB")
    assert "needs more than" in stderr and "--memory-limit" in stderr


def test_result_size_limit(folder: Path) -> None:
    stderr = _refused_with(folder, "SELECT * FROM logs", "--max-rows", "10")
    assert "more than 10 rows (--max-rows)" in stderr


def _refused_with(folder: Path, sql: str, *flags: str) -> str:
    result = run_agent("query", "--logs", str(folder), "--sql", sql, *flags, check=False)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    return result.stderr


def test_self_join_reads_the_stream_twice_and_counts_once(folder: Path) -> None:
    sql = (
        "SELECT (SELECT count(*) FROM logs) AS a, count(*) AS b "
        "FROM logs l JOIN logs r USING (request)"
    )
    result = run_agent("query", "--logs", str(folder), "--sql", sql, "--format", "csv")
    assert result.stdout.splitlines()[1] == "40,1600"
    assert "40 events" in result.stderr


@pytest.mark.parametrize(
    ("sql", "columns"),
    [
        ("SELECT count(*) FROM logs", ["status"]),
        ("SELECT request, count(*) FROM logs WHERE status = 404 GROUP BY 1", ["request", "status"]),
        ("SELECT * FROM logs", None),
        ("SELECT l FROM logs l", None),
        ("SELECT COLUMNS('.*addr') FROM logs", None),
        ("not sql", None),
    ],
)
def test_only_used_columns_are_read(sql: str, columns: list[str] | None) -> None:
    from agent.events import FIELDS
    from agent.sandbox import needed_columns

    assert needed_columns(sql) == (columns if columns is not None else list(FIELDS))


def test_a_sandbox_that_cannot_be_made_fails_the_query_with_its_own_error(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(limits: Limits) -> duckdb.DuckDBPyConnection:
        raise duckdb.OutOfMemoryException("no memory for a second database")

    monkeypatch.setattr(agent.sandbox, "_connect", broken)
    with pytest.raises(duckdb.OutOfMemoryException, match="no memory for a second database"):
        run_query(folder, "SELECT count(*) FROM logs", {}, Window(), io.StringIO())


def test_a_query_closes_its_databases_unless_the_process_leaves_them_to_its_exit(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """agent/exiting.py: in process (a test, a library user) the sandbox and the reader are
    closed when the answer is back; after `leave_to_exit()` (`python -m agent`, which leaves
    with os._exit) both are kept open, referenced, for the exit."""
    import agent.exiting

    made = record_sandboxes(monkeypatch)  # (limits, database) of each sandbox
    sql = "SELECT count(*) AS n FROM logs"
    assert run_query(folder, sql, {}, Window(), io.StringIO()).rows == [(40,)]
    with pytest.raises(duckdb.ConnectionException):
        made[0][1].execute("SELECT 1")

    monkeypatch.setattr(agent.exiting, "_kept", None)
    agent.exiting.leave_to_exit()
    kept = agent.exiting._kept
    assert kept == []
    assert run_query(folder, sql, {}, Window(), io.StringIO()).rows == [(40,)]
    try:
        assert made[1][1] in kept and len(kept) == 2  # the sandbox, and the reader
        assert made[1][1].execute("SELECT 1").fetchall() == [(1,)]
    finally:
        for owner in kept:
            owner.close()  # type: ignore[attr-defined]
