"""The reader-to-sandbox plumbing (agent/cstream.py, agent/stream.py): Arrow C streams chained
with ctypes, counted and de-duplicated in place, and what the query path imports.

The C stream interface these tests rely on is Arrow's own:
https://arrow.apache.org/docs/format/CStreamInterface.html (a stream's `release` set to NULL
once released; a consumer moves the struct out of its capsule).
"""

import ctypes
import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from agent.cstream import ArrowSchema, Batch, ChainedStream, release_array
from tests.agent.conftest import (
    REPO,
    event_line,
    query_json,
    run_agent,
    write_compacted,
    write_events,
    write_raw,
)


def _read(stream: ChainedStream) -> pa.Table:
    """Every batch, as agent/stream.py reads them for the compactor."""
    schema_struct = ArrowSchema()
    stream.schema_into(ctypes.addressof(schema_struct))
    schema = pa.Schema._import_from_c(ctypes.addressof(schema_struct))
    batches = []
    for array in stream.arrays():
        batches.append(pa.RecordBatch._import_from_c(ctypes.addressof(array), schema))
        release_array(array)
    return pa.Table.from_batches(batches, schema)


def _capsule(*batches: pa.RecordBatch) -> object:
    return pa.RecordBatchReader.from_batches(batches[0].schema, batches).__arrow_c_stream__()


def _flags(values: list[bool | None], offset: int = 0) -> pa.RecordBatch:
    """`_ok` and `n` columns; with `offset`, a slice, so the exported arrays have offsets."""
    padded = [False] * offset + values
    batch = pa.record_batch(
        {"_ok": pa.array(padded, pa.bool_()), "n": pa.array(range(len(padded)), pa.int64())}
    )
    return batch.slice(offset)


@pytest.mark.parametrize("offset", [0, 3, 8, 13])
def test_counts_and_clears_flags_at_any_offset(offset: int) -> None:
    values: list[bool | None] = [True, False, None, True, True, False, True, True, True, True, None]
    expected = sum(v is True for v in values)
    seen: list[int] = []

    def look(index: int, batches: list[Batch]) -> None:
        for batch in batches:
            seen.append(batch.ones("_ok"))
            mask = batch.mask("_ok")
            assert mask.tolist() == [v is True for v in values]
            mask[0] = False  # drop the first row, as de-duplication does
            batch.set_mask("_ok", mask)

    stream = ChainedStream(
        lambda: _capsule(_flags(values, offset)), [lambda: _capsule(_flags(values, offset))],
        look, lambda: None,
    )  # fmt: skip
    table = _read(stream)
    assert seen == [expected]
    assert table.column("_ok").to_pylist() == [False, *[v for v in values[1:]]]
    assert table.column("n").to_pylist() == list(range(offset, offset + len(values)))


class _Wrapped:
    """An object with `__arrow_c_stream__`, as pyarrow and DuckDB take it."""

    def __init__(self, stream: ChainedStream) -> None:
        self.stream = stream

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self.stream.capsule()


def test_sources_are_chained_and_opened_only_when_read() -> None:
    opened: list[int] = []
    ended: list[bool] = []

    def source(index: int) -> object:
        opened.append(index)
        return _capsule(_flags([True] * (index + 1)))

    def make() -> ChainedStream:
        return ChainedStream(
            lambda: _capsule(_flags([])),
            [lambda i=i: source(i) for i in range(3)],  # type: ignore[misc]
            lambda index, batches: None,
            lambda: ended.append(True),
        )

    con = duckdb.connect()
    con.register("rows", _Fresh(make))
    # Binding asks for the schema only: no source is opened for it.
    con.execute("CREATE VIEW v AS SELECT n FROM rows WHERE _ok")
    assert opened == []
    assert con.execute("SELECT count(*), sum(n) FROM v").fetchall() == [(6, 0 + 1 + 3)]
    assert opened == [0, 1, 2] and ended == [True]
    # The consumer goes first: the streams' callbacks must outlive every call it makes.
    con.close()


class _Fresh:
    def __init__(self, make: object) -> None:
        self.make = make
        self.streams: list[ChainedStream] = []

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        stream = self.make()  # type: ignore[operator]
        self.streams.append(stream)
        return stream.capsule()


def test_a_producer_error_ends_the_stream_with_its_message() -> None:
    con = duckdb.connect()
    failing = con.sql("SELECT CASE WHEN i < 3000 THEN true ELSE error('boom at 3000') END AS _ok "
                      "FROM range(5000) t(i)")  # fmt: skip
    stream = ChainedStream(
        lambda: _capsule(pa.record_batch({"_ok": pa.array([], pa.bool_())})),
        [failing.__arrow_c_stream__],
        lambda index, batches: None,
        lambda: None,
    )
    consumer = duckdb.connect()
    consumer.register("rows", _Wrapped(stream))
    with pytest.raises(duckdb.Error, match="boom at 3000"):
        consumer.execute("SELECT count(*) FROM rows").fetchall()
    consumer.close()
    assert stream.failure is not None and "boom at 3000" in stream.failure


def test_an_unread_capsule_is_released() -> None:
    con = duckdb.connect()
    stream = ChainedStream(
        lambda: con.sql("SELECT true AS _ok").__arrow_c_stream__(),
        [lambda: con.sql("SELECT true AS _ok FROM range(10)").__arrow_c_stream__()],
        lambda index, batches: None,
        lambda: None,
    )
    stream.capsule()
    stream.close()
    # Released: the connection is free again (a stream left open would hold it).
    assert con.execute("SELECT 42").fetchall() == [(42,)]


def test_a_query_imports_neither_pyarrow_nor_numpy(tmp_path: Path) -> None:
    """A node folder's query moves its rows as Arrow C data without pyarrow (0.1 s a process)."""
    write_raw(tmp_path / "logs" / "application.log", [event_line()] * 5)
    script = (
        "import sys\n"
        "from agent.cli import main\n"
        f"code = main(['query', '--logs', {str(tmp_path / 'logs')!r}, '--sql', "
        "'SELECT count(*) FROM logs'])\n"
        "print(sorted(m for m in ('pyarrow', 'numpy') if m in sys.modules), code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == "[] 0"


def test_the_reader_rows_are_out_of_reach_of_user_sql(tmp_path: Path) -> None:
    """`logs` is a view over the reader's rows, which also hold flagged rows (a malformed line,
    a re-delivered copy). User SQL gets `logs` only: the rows' relation has a name made afresh
    per query, which one statement can list but not use (DuckDB's query_table and query take no
    subqueries), so no count can include a flagged row."""
    folder = tmp_path / "logs"
    write_raw(folder / "application.log", [event_line(), b"not json\n", event_line()])
    rows, stderr = query_json("--logs", str(folder), "--sql", "SELECT count(*) AS n FROM logs")
    assert rows == [{"n": 2}]
    assert "1 malformed lines skipped" in stderr
    listed = "SELECT view_name FROM duckdb_views() WHERE view_name LIKE '\\_reader%' ESCAPE '\\'"
    first, _ = query_json("--logs", str(folder), "--sql", listed)
    second, _ = query_json("--logs", str(folder), "--sql", listed)
    (name,) = (row["view_name"] for row in first)
    assert re.fullmatch(r"_reader_rows_[0-9a-f]{32}", name)
    assert second != first
    for sql in (
        "SELECT count(*) FROM _reader_rows",
        f"SELECT count(*) FROM query_table('{name}')",
        "SELECT count(*) FROM query_table((SELECT min(view_name) FROM duckdb_views() "
        "WHERE view_name LIKE '\\_reader%' ESCAPE '\\'))",
    ):
        result = run_agent("query", "--logs", str(folder), "--sql", sql, check=False)
        assert result.returncode == 1, (sql, result.stdout)


def test_compacted_only_hours_count_exactly_in_a_window(tmp_path: Path) -> None:
    """Rows only from compacted files are neither validated nor de-duplicated again; counts
    and the window still hold, and a damaged footer among good ones costs only its hour."""
    root = tmp_path / "archive"
    counts = {}
    for hour, seed in (("10", 1), ("11", 2), ("12", 3)):
        folder = root / "region=eu-1" / "dt=2025-01-01" / f"hour={hour}"
        events = write_events(
            folder / "raw.gz", seed, 40 + seed, f"2025-01-01T{hour}:00", f"2025-01-01T{hour}:59"
        )
        counts[hour] = len(events)
        # Events without identity columns: written with null ids, as before identities.
        write_compacted(folder / "compacted.parquet", events, ["raw.gz"])
    damaged = root / "region=eu-1" / "dt=2025-01-01" / "hour=12" / "compacted.parquet"
    damaged.write_bytes(b"PAR1 not parquet PAR1")
    rows, stderr = query_json(
        "--logs", str(root), "--sql", "SELECT count(*) AS n FROM logs",
        "--since", "2025-01-01T11:00:00",
    )  # fmt: skip
    # Hour 11 from its compacted file, hour 12 from its raw object (the footer is damaged).
    assert rows == [{"n": counts["11"] + counts["12"]}]
    assert "0 duplicate events removed" in stderr
    assert "hour=12/compacted.parquet: unreadable" in stderr
    assert json.dumps(rows)


def test_mask_round_trip_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2, 1000).astype(bool).tolist()
    seen: list[list[bool]] = []

    def look(index: int, batches: list[Batch]) -> None:
        seen.extend(b.mask("_ok").tolist() for b in batches)

    stream = ChainedStream(
        lambda: _capsule(_flags(values)), [lambda: _capsule(_flags(values, 5))], look,
        lambda: None,
    )  # fmt: skip
    _read(stream)
    assert seen == [values]
