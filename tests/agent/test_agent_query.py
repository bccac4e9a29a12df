"""The query tool over a node folder and an archive root, with real DuckDB."""

import gzip
import json
import os
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from agent.archive import encode_metadata
from agent.named import Named
from agent.schema import EVENT_SCHEMA
from tests.agent.conftest import query_json, run_agent, write_events


def _rows(events: list[dict[str, object]], key: str, status: int) -> Counter[object]:
    return Counter(e[key] for e in events if e["status"] == status)


def test_node_folder_counts_every_event_once(node_folder: tuple[Path, list]) -> None:
    folder, events = node_folder
    rows, stderr = query_json("--logs", str(folder), "--named", "data-volume")
    assert rows[0]["requests"] == len(events)
    assert rows[0]["total_bytes"] == sum(int(e["body_bytes_sent"]) for e in events)
    assert "read 3 files" in stderr
    # The tool never leaves decompressed copies behind.
    assert sorted(p.name for p in folder.iterdir()) == [
        "application.log",
        "application.log.1",
        "application.log.2.gz",
    ]


def test_named_queries_match_python(node_folder: tuple[Path, list]) -> None:
    folder, events = node_folder
    rows, _ = query_json("--logs", str(folder), "--named", "error-analysis", "--limit", "50")
    assert {r["request"]: r["requests"] for r in rows} == _rows(events, "request", 404)
    rows, _ = query_json("--logs", str(folder), "--named", "throttled-ips", "--limit", "3")
    expected = sorted(_rows(events, "remote_addr", 429).items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(r["remote_addr"], r["requests"]) for r in rows] == expected[:3]
    rows, _ = query_json("--logs", str(folder), "--named", "peak-traffic")
    per_hour = Counter(str(e["time_local"])[:13] + ":00:00" for e in events)
    assert {r["hour"]: r["requests"] for r in rows} == per_hour
    rows, _ = query_json("--logs", str(folder), "--named", "security-analysis", "--threshold", "40")
    by_ip = Counter(e["remote_addr"] for e in events)
    assert {r["remote_addr"] for r in rows} == {ip for ip, n in by_ip.items() if n > 40}


def test_every_named_query_runs(node_folder: tuple[Path, list]) -> None:
    folder, _ = node_folder
    for name in Named:
        rows, _ = query_json("--logs", str(folder), "--named", name.value, "--threshold", "1")
        assert rows, name


def test_formats(node_folder: tuple[Path, list]) -> None:
    folder, events = node_folder
    args = ("query", "--logs", str(folder), "--sql", "SELECT count(*) AS n FROM logs")
    assert run_agent(*args, "--format", "csv").stdout == f"n\n{len(events)}\n"
    table = run_agent(*args).stdout.splitlines()
    assert table[0].strip() == "n" and table[2].strip() == str(len(events))
    assert json.loads(run_agent(*args, "--format", "json").stdout) == [{"n": len(events)}]


def test_time_window_filters_rows_and_prunes_files(node_folder: tuple[Path, list]) -> None:
    folder, events = node_folder
    # Give the rotated files the mtimes they would have had: their last write.
    os.utime(folder / "application.log.2.gz", (1735711200, 1735711200))  # 2025-01-01T06:00
    os.utime(folder / "application.log.1", (1735722000, 1735722000))  # 2025-01-01T09:00
    since, until = "2025-01-01T06:30:00", "2025-01-01T08:00:00"
    rows, stderr = query_json(
        "--logs",
        str(folder),
        "--sql",
        "SELECT count(*) AS n FROM logs",
        "--since",
        since,
        "--until",
        until,
    )
    assert rows[0]["n"] == sum(1 for e in events if since <= str(e["time_local"]) < until)
    # The .gz ended before the window and the live file starts after it.
    assert "read 1 files, pruned 2" in stderr


def test_malformed_lines_and_truncated_gzip_are_reported(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    good = write_events(folder / "application.log", 1, 500, "2025-01-01", "2025-01-01T01:00")
    with (folder / "application.log").open("a") as sink:
        sink.write('not json\n{"remote_addr": "1.2.3.4"}\n{"status": "oops"\n')
    whole = gzip.compress(
        "".join(json.dumps(e) + "\n" for e in good[:400]).encode(), compresslevel=1
    )
    (folder / "application.log.2.gz").write_bytes(whole[: len(whole) // 2])
    result = run_agent(
        "query", "--logs", str(folder), "--format", "json", "--sql", "SELECT count(*) n FROM logs"
    )
    assert result.returncode == 0
    salvaged = json.loads(result.stdout)[0]["n"] - 500
    assert 0 < salvaged < 400
    assert "3 malformed lines skipped" in result.stderr
    assert "application.log.2.gz: truncated gzip" in result.stderr


def test_custom_sql_cannot_touch_files(node_folder: tuple[Path, list]) -> None:
    folder, _ = node_folder
    for sql in (
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_text('{folder}/application.log')",
        f"COPY (SELECT 1) TO '{folder}/out.csv'",
        "DELETE FROM logs",
        "SET enable_external_access = true",
    ):
        result = run_agent("query", "--logs", str(folder), "--sql", sql, check=False)
        assert result.returncode == 1, sql
        assert "query: error:" in result.stderr
        assert result.stdout == ""
    assert not (folder / "out.csv").exists()


def _archive_hour(root: Path, hour: str) -> Path:
    return root / "region=eu-west-1" / "dt=2025-01-01" / f"hour={hour}"


def _compacted(path: Path, events: list[dict[str, object]], sources: list[str]) -> None:
    as_text = EVENT_SCHEMA.set(2, pa.field("time_local", pa.string()))
    table = pa.Table.from_pylist(events, schema=as_text).cast(EVENT_SCHEMA)
    metadata = encode_metadata(dict.fromkeys(sources, '"etag"'), {})
    pq.write_table(table.replace_schema_metadata(metadata), path)


def test_archive_counts_raw_and_compacted_once(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    h00, h01 = _archive_hour(root, "00"), _archive_hour(root, "01")
    first = write_events(h00 / "a.gz", 1, 300, "2025-01-01T00:00", "2025-01-01T01:00")
    # The shipper re-delivered part of a.gz as b.gz (at least once delivery).
    redelivered = gzip.decompress((h00 / "a.gz").read_bytes()).splitlines(keepends=True)[:40]
    (h00 / "b.gz").write_bytes(gzip.compress(b"".join(redelivered)))
    second = write_events(h01 / "c.gz", 2, 200, "2025-01-01T01:00", "2025-01-01T02:00")
    _compacted(h01 / "compacted.parquet", second, ["c.gz"])
    late = write_events(h01 / "d.gz", 3, 50, "2025-01-01T01:00", "2025-01-01T02:00")
    rows, stderr = query_json("--logs", str(root), "--sql", "SELECT count(*) AS n FROM logs")
    distinct = {json.dumps(e, sort_keys=True) for e in first + second + late}
    assert rows[0]["n"] == len(distinct)
    assert "archive" in stderr


def test_archive_window_prunes_partitions(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    inside = write_events(
        _archive_hour(root, "05") / "x.gz", 1, 100, "2025-01-01T05:00", "2025-01-01T06:00"
    )
    outside = _archive_hour(root, "07") / "y.gz"
    outside.parent.mkdir(parents=True)
    outside.write_bytes(b"not gzip at all: would be reported if it were opened")
    (root / "region=eu-west-1" / "dt=2024-12-31").mkdir()
    rows, stderr = query_json(
        "--logs",
        str(root),
        "--sql",
        "SELECT count(*) AS n FROM logs",
        "--since",
        "2025-01-01T05:00:00",
        "--until",
        "2025-01-01T06:00:00",
    )
    assert rows[0]["n"] == len(inside)
    assert "pruned 2" in stderr and "warning" not in stderr
