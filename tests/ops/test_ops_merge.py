"""Merged answers are exact: every node's partial document (the real agent, real DuckDB) merged
by infra.ops equals one query over all nodes' events together."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main as agent_main
from agent.generate import backfill_lines
from agent.named import Combine, MergeRule, Named, OrderTerm
from infra.ops.merge import combine, finish, parse_answer

# node-a and node-b share a seed, so the same client addresses appear on both; the time ranges
# overlap, so hours and paths add up across nodes too.
NODE_RANGES = {
    "node-a": (11, 2500, "2025-01-15T00:00:00", "2025-01-15T05:00:00"),
    "node-b": (11, 1800, "2025-01-15T03:00:00", "2025-01-15T09:00:00"),
    "node-c": (13, 1200, "2025-01-15T08:30:00", "2025-01-15T10:00:00"),
}


def _agent(*arguments: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = agent_main(list(arguments))
    return code, stdout.getvalue(), stderr.getvalue()


def _event(request: str, status: int = 404, addr: str = "10.0.0.1", bytes_sent: int = 100) -> str:
    return json.dumps(
        {
            "remote_addr": addr,
            "remote_user": "-",
            "time_local": "2025-01-15T10:00:00",
            "http_method": "GET",
            "request": request,
            "http_version": "HTTP/1.1",
            "status": status,
            "body_bytes_sent": bytes_sent,
            "http_referer": "-",
            "http_user_agent": "test",
        }
    )


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    """Three nodes' log folders, and one folder holding all their files (the reference)."""
    root = tmp_path_factory.mktemp("nodes")
    folders = {}
    everything = root / "all"
    everything.mkdir()
    for node, (seed, count, start, end) in NODE_RANGES.items():
        folder = root / node
        folder.mkdir()
        lines = backfill_lines(
            seed, count, datetime.fromisoformat(start), datetime.fromisoformat(end)
        )
        (folder / "application.log").write_text("".join(lines))
        shutil.copy(folder / "application.log", everything / f"{node}.log")
        folders[node] = folder
    return folders, everything


def _merged(folders: dict[str, Path], *query: str) -> tuple[list[str], list[list[Any]]]:
    answers = []
    for node, folder in folders.items():
        code, out, err = _agent("query", "--logs", str(folder), *query, "--partial")
        assert code == 0, err
        answers.append((node, "eu-1", parse_answer(out)))
    combined = combine(answers, per_node=False)
    assert combined.merged, combined.notice
    return combined.columns, combined.rows


def _reference(everything: Path, *query: str) -> list[dict[str, Any]]:
    code, out, err = _agent("query", "--logs", str(everything), *query, "--format", "json")
    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def _as_dicts(columns: list[str], rows: list[list[Any]]) -> list[dict[str, Any]]:
    return json.loads(json.dumps([dict(zip(columns, row, strict=True)) for row in rows]))


@pytest.mark.parametrize("name", [n.value for n in Named])
@pytest.mark.parametrize(
    "options", [("--limit", "3", "--threshold", "40"), ("--limit", "50", "--threshold", "150")]
)
def test_every_named_query_merges_to_the_answer_over_all_events(nodes, name, options):
    folders, everything = nodes
    columns, rows = _merged(folders, "--named", name, *options)
    reference = _reference(everything, "--named", name, *options)
    assert _as_dicts(columns, rows) == reference
    assert reference, "the reference must not be empty, or the comparison proves nothing"


def test_a_path_eleventh_on_every_node_is_first_overall(tmp_path: Path):
    folders = {}
    for index in range(3):
        folder = tmp_path / f"node-{index}"
        folder.mkdir()
        own = [_event(f"/only-{index}-{n}") for n in range(10) for _ in range(5)]
        shared = [_event("/everywhere")] * 4
        (folder / "application.log").write_text("\n".join(own + shared) + "\n")
        folders[f"node-{index}"] = folder
    for folder in folders.values():
        code, out, _ = _agent("query", "--logs", str(folder), "--named", "error-analysis")
        assert code == 0
        assert "/everywhere" not in out  # 11th on its node: outside each node's top 10
    columns, rows = _merged(folders, "--named", "error-analysis")
    assert _as_dicts(columns, rows)[0] == {"request": "/everywhere", "requests": 12}


SQL_MERGED = [
    "SELECT status, count(*) AS n FROM logs GROUP BY status ORDER BY n DESC, status LIMIT 4",
    "SELECT status, count(*), sum(body_bytes_sent), min(time_local), max(time_local) "
    "FROM logs GROUP BY 1 ORDER BY 1",
    "SELECT http_method AS m, status, count(*) FILTER (WHERE body_bytes_sent > 1000) AS big "
    "FROM logs WHERE status < 500 GROUP BY ALL ORDER BY big DESC, m, status LIMIT 5 OFFSET 1",
    "SELECT count(*) AS n, max(body_bytes_sent) AS largest FROM logs",
    "SELECT remote_addr FROM logs GROUP BY remote_addr ORDER BY remote_addr LIMIT 7",
]


@pytest.mark.parametrize("sql", SQL_MERGED)
def test_plain_sql_aggregations_merge_exactly(nodes, sql):
    folders, everything = nodes
    columns, rows = _merged(folders, "--sql", sql)
    assert _as_dicts(columns, rows) == _reference(everything, "--sql", sql)


SQL_PER_NODE = {
    "SELECT status, avg(body_bytes_sent) FROM logs GROUP BY status": "aggregate other than",
    "SELECT status, count(*) AS n FROM logs GROUP BY status HAVING n > 5": "HAVING",
    "SELECT status, count(*) FROM logs GROUP BY status LIMIT 200": "LIMIT without ORDER BY",
    "SELECT * FROM logs WHERE status = 500": "not an aggregation",
    "SELECT count(DISTINCT remote_addr) FROM logs": "DISTINCT",
    "SELECT status, count(*) FROM (SELECT * FROM logs) GROUP BY status": "`logs` view directly",
    "SELECT status, count(*) OVER () FROM logs": "window",
    "SELECT status / 100 AS class, count(*) FROM logs GROUP BY status": "GROUP BY expression",
    "SELECT status, sum(body_bytes_sent / 2) FROM logs GROUP BY status": "non-integer",
    "WITH x AS (SELECT * FROM logs) SELECT count(*) FROM x": "WITH",
}


@pytest.mark.parametrize(("sql", "reason"), list(SQL_PER_NODE.items()))
def test_other_sql_is_answered_per_node_and_says_why(nodes, sql, reason):
    folders, _ = nodes
    answers = []
    for node, folder in folders.items():
        code, out, err = _agent("query", "--logs", str(folder), "--sql", sql, "--partial")
        assert code == 0, err
        answers.append((node, "eu-1", parse_answer(out)))
    combined = combine(answers, per_node=False)
    assert not combined.merged
    assert combined.notice is not None and reason in combined.notice
    for node, folder in folders.items():
        code, out, _ = _agent("query", "--logs", str(folder), "--sql", sql, "--format", "json")
        own = [r[2:] for r in combined.rows if r[0] == node]
        expected = [list(row.values()) for row in json.loads(out)]
        assert expected, "each node must have rows, or the comparison proves nothing"
        # No ORDER BY: the same rows, in whatever order DuckDB chose.
        assert sorted(map(json.dumps, own)) == sorted(map(json.dumps, expected))


def test_per_node_rows_are_each_nodes_own_answer(nodes):
    folders, _ = nodes
    answers = []
    for node, folder in folders.items():
        _, out, _ = _agent("query", "--logs", str(folder), "--named", "throttled-ips", "--partial")
        answers.append((node, "eu-1", parse_answer(out)))
    combined = combine(answers, per_node=True)
    assert combined.columns[:2] == ["node", "region"]
    for node, folder in folders.items():
        own = _reference(folder, "--named", "throttled-ips")
        rows = [dict(zip(combined.columns, r, strict=True)) for r in combined.rows if r[0] == node]
        assert [{k: v for k, v in r.items() if k not in ("node", "region")} for r in rows] == own


def test_finish_follows_sql_null_rules():
    rule = MergeRule(
        keys=(0,),
        values=((1, Combine.SUM), (2, Combine.MIN), (3, Combine.MAX)),
        order=(OrderTerm(1, descending=True, nulls_first=True), OrderTerm(0)),
        limit=3,
        offset=1,
    )
    node_1 = [["a", 1, "2025-01-02", None], ["b", None, None, 5], [None, 2, "2025-01-01", 1]]
    node_2 = [["a", 2, "2025-01-01", 3], ["b", None, "2025-01-03", None], ["c", 2, None, None]]
    # a: 3, b: NULL (all NULL sums stay NULL), NULL key: 2, c: 2 -> NULLS FIRST, then 3, 2, 2
    assert finish(rule, [node_1, node_2]) == [
        ["a", 3, "2025-01-01", 3],
        ["c", 2, None, None],
        [None, 2, "2025-01-01", 1],
    ]
    above = MergeRule(keys=(0,), values=((1, Combine.SUM),), above=((1, 2),))
    assert finish(above, [[["x", 2], ["y", None]], [["x", 1], ["z", 2]]]) == [["x", 3]]


def test_a_damaged_document_is_refused_with_what_is_wrong():
    for text, message in [
        ("[]", "not a bacalhau-logs.partial/1 document"),
        ('{"format": "bacalhau-logs.partial/1", "columns": ["a"], "rows": [[1, 2]]}', "as wide"),
        (
            '{"format": "bacalhau-logs.partial/1", "columns": ["a"], "rows": [], '
            '"rule": {"keys": [3], "values": []}}',
            "column the rows do not have",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_answer(text)
