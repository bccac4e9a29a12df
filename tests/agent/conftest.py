"""Fixtures for the agent tests: generated log folders and a local S3 (moto) server."""

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agent.archive import encode_metadata
from agent.generate import backfill_lines
from agent.sandbox import Limits
from agent.schema import COMPACTED_SCHEMA
from tests.support.s3_server import moto_s3_server

REPO = Path(__file__).resolve().parents[2]


Event = dict[str, object]


def write_events(path: Path, seed: int, count: int, start: str, end: str) -> list[Event]:
    """Write generated events to `path` (gzip if it ends in .gz); returns them parsed."""
    lines = list(
        backfill_lines(seed, count, datetime.fromisoformat(start), datetime.fromisoformat(end))
    )
    data = "".join(lines).encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return [json.loads(line) for line in lines]


GOOD_EVENT: Event = {
    "remote_addr": "10.0.0.1",
    "remote_user": "-",
    "time_local": "2025-01-01T10:00:00",
    "http_method": "GET",
    "request": "/ok",
    "http_version": "HTTP/1.1",
    "status": 200,
    "body_bytes_sent": 512,
    "http_referer": "-",
    "http_user_agent": "curl/8.5.0",
}


def event_line(**changes: object) -> bytes:
    """One NDJSON line: GOOD_EVENT with `changes` (a value of `...` removes the field)."""
    event = {**GOOD_EVENT, **changes}
    return (json.dumps({k: v for k, v in event.items() if v is not ...}) + "\n").encode()


def write_raw(path: Path, lines: list[bytes]) -> None:
    """Write `lines` verbatim to `path`, gzip-compressed if it ends in .gz."""
    data = b"".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def write_compacted(path: Path, rows: list[Event], sources: Iterable[str]) -> None:
    """Write `rows` (events as parsed from NDJSON; a column they lack is null) to `path` as
    a compacted file whose metadata records `sources` as its raw objects, each with ETag "e"."""
    as_text = COMPACTED_SCHEMA.set(2, pa.field("time_local", pa.string()))
    table = pa.Table.from_pylist(rows, schema=as_text).cast(COMPACTED_SCHEMA)
    metadata = encode_metadata(dict.fromkeys(sources, '"e"'), {})
    pq.write_table(table.replace_schema_metadata(metadata), path)


def run_agent(*args: str, check: bool = True, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run `python -m agent ...` in a subprocess, as the container does."""
    result = subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"agent {args} failed ({result.returncode}): {result.stderr}")
    return result


def query_json(*args: str) -> tuple[list[dict[str, object]], str]:
    """Run `query --format json`; returns the rows and stderr."""
    result = run_agent("query", "--format", "json", *args)
    return json.loads(result.stdout), result.stderr


def count(folder: Path, *args: str) -> tuple[int, str]:
    """`SELECT count(*)` over `folder`; returns the count and stderr."""
    rows, stderr = query_json(
        "--logs", str(folder), "--sql", "SELECT count(*) AS n FROM logs", *args
    )
    return int(str(rows[0]["n"])), stderr


@pytest.fixture
def node_folder(tmp_path: Path) -> Iterator[tuple[Path, list[dict[str, object]]]]:
    """A node log folder as rotation leaves it: live file, plain `.1` and a `.2.gz`."""
    folder = tmp_path / "logs"
    events = write_events(
        folder / "application.log.2.gz", 1, 3000, "2025-01-01T00:00:00", "2025-01-01T06:00:00"
    )
    events += write_events(
        folder / "application.log.1", 2, 2000, "2025-01-01T06:00:00", "2025-01-01T09:00:00"
    )
    events += write_events(
        folder / "application.log", 3, 1000, "2025-01-01T09:00:00", "2025-01-01T10:00:00"
    )
    yield folder, events


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-protocol server (moto) on 127.0.0.1, for the whole session."""
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials in the environment, as the standard chain finds them (moto accepts any)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def bucket(s3_endpoint: str, s3_env: None, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket per test."""
    from agent.s3 import make_client

    name = "logs-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    make_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def record_sandboxes(
    monkeypatch: pytest.MonkeyPatch,
) -> list[tuple[Limits, duckdb.DuckDBPyConnection]]:
    """Every sandbox database a query makes from now on (agent/sandbox.py `_connect`), with
    the limits it was made with, in order."""
    import agent.sandbox

    made: list[tuple[Limits, duckdb.DuckDBPyConnection]] = []
    real = agent.sandbox._connect

    def recorded(limits: Limits) -> duckdb.DuckDBPyConnection:
        made.append((limits, real(limits)))
        return made[-1][1]

    monkeypatch.setattr(agent.sandbox, "_connect", recorded)
    return made
