"""The operator CLI end to end against the stand-in orchestrator (node answers injected)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from agent.named import Named
from infra.ops.cli import main
from tests.ops.conftest import AGENT_IMAGE, NODES, Cli, partial

EU1, EU2 = NODES["eu-1"]
(US1,) = NODES["us-1"]
REGION_OF = {node: region for region, names in NODES.items() for node in names}


def _answer(cli: Cli, per_node: dict[str, dict[str, Any]]) -> None:
    """Each submitted job gets one execution on every node of ``per_node`` that its
    constraints select (add_execution kwargs), as an ops job runs on every matching node."""

    def react(job: dict[str, Any]) -> None:
        selected: dict[str, list[str]] = {c["Key"]: c["Values"] for c in job["Constraints"]}
        matched = False
        for node, execution in per_node.items():
            if REGION_OF[node] not in selected["region"]:
                continue
            if "host" in selected and node not in selected["host"]:
                continue
            cli.orchestrator.add_execution(str(job["ID"]), node, **execution)
            matched = True
        if not matched:
            # OpsJobScheduler.createMissingExecs (pkg/orchestrator/scheduler/ops_job.go): no
            # matching node and no execution fails the job at once.
            cli.orchestrator.set_job_state(str(job["ID"]), "Failed", "no matching nodes")

    cli.on_submit(react)


def test_named_query_is_one_merged_exact_answer_from_one_job_per_region(cli: Cli):
    _answer(
        cli,
        {
            EU1: {"stdout": partial([["/a", 3], ["/b", 2]]), "delay": 0.05},
            EU2: {"stdout": partial([["/c", 3], ["/b", 2]])},
            US1: {"stdout": partial([["/d", 3], ["/b", 2]])},
        },
    )
    code, out, err = cli.run("query", "error-analysis", "--format", "json")
    assert code == 0, err
    # /b is second on every node and first overall.
    assert json.loads(out) == [
        {"request": "/b", "requests": 6},
        {"request": "/a", "requests": 3},
        {"request": "/c", "requests": 3},
        {"request": "/d", "requests": 3},
    ]
    assert "merged answer from 3 nodes in 2 regions (eu-1, us-1); 0 malformed lines skipped" in err
    jobs = {job["Constraints"][0]["Values"][0]: job for job in cli.submitted}
    assert sorted(jobs) == ["eu-1", "us-1"]
    for region, job in jobs.items():
        assert job["Type"] == "ops"
        assert job["Name"].startswith(f"dev-ops-error-analysis-{region}-")
        assert job["Constraints"] == [{"Key": "region", "Operator": "in", "Values": [region]}]
        task = job["Tasks"][0]
        assert task["Engine"]["Params"]["Image"] == AGENT_IMAGE
        assert task["Engine"]["Params"]["Parameters"][-1] == "--partial"
        assert task["Publisher"]["Params"]["Bucket"] == f"bacalhau-logs-dev-{region}-archive"
        assert task["Publisher"]["Params"]["Encoding"] == "plain"
    assert "submitted dev-ops-error-analysis-eu-1-" in err and "job Completed" in err


def test_per_node_keeps_each_nodes_own_answer_with_node_and_region(cli: Cli):
    _answer(
        cli,
        {
            EU1: {"stdout": partial([["/a", 3], ["/b", 1]])},
            EU2: {"stdout": partial([["/b", 2]])},
        },
    )
    code, out, err = cli.run("query", "error-analysis", "--region", "eu-1", "--per-node")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["node", "region", "request", "requests"]
    assert [line.split() for line in lines[2:5]] == [
        [EU1, "eu-1", "/a", "3"],
        [EU1, "eu-1", "/b", "1"],
        [EU2, "eu-1", "/b", "2"],
    ]
    assert "answers per node from 2 nodes in 1 region (eu-1)" in err


def test_host_and_region_flags_reach_the_submitted_constraints(cli: Cli):
    count = partial([[7]], columns=("n",), named=None, merge=False, reason="x")
    _answer(cli, {EU2: {"stdout": count}})
    code, out, err = cli.run(
        "query", "--sql", "SELECT count(*) AS n FROM logs", "--region", "eu-1", "--host", EU2,
        "--since", "2025-01-01T00:00:00", "--format", "csv", "--limit", "5",
    )  # fmt: skip
    assert code == 0, err
    assert list(csv.reader(io.StringIO(out))) == [["node", "region", "n"], [EU2, "eu-1", "7"]]
    (job,) = cli.submitted
    assert job["Constraints"] == [
        {"Key": "region", "Operator": "in", "Values": ["eu-1"]},
        {"Key": "host", "Operator": "in", "Values": [EU2]},
    ]
    parameters = job["Tasks"][0]["Engine"]["Params"]["Parameters"]
    assert parameters[3:] == [
        "--sql", "SELECT count(*) AS n FROM logs", "--since", "2025-01-01T00:00:00",
        "--format", "json", "--limit", "5", "--partial",
    ]  # fmt: skip


def test_sql_that_cannot_merge_prints_each_nodes_rows_and_says_why(cli: Cli):
    why = "column 2 uses an aggregate other than a bare count, sum, min or max"
    rows = partial([[200, 1.5]], ("status", "avg"), named=None, merge=False, reason=why)
    _answer(cli, {EU1: {"stdout": rows}, EU2: {"stdout": rows}})
    code, out, err = cli.run(
        "query", "--sql", "SELECT status, avg(body_bytes_sent) FROM logs GROUP BY 1",
        "--region", "eu-1", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    assert [row["node"] for row in json.loads(out)] == [EU1, EU2]
    assert f"not merged: {why}; showing each node's own rows" in err


def test_table_output_is_aligned(cli: Cli):
    volume = ("requests", "total_bytes", "first_event", "last_event")
    row = [1234, 5, "2025-01-01T00:00:00", "2025-01-01T01:00:00"]
    _answer(cli, {EU1: {"stdout": partial([row], volume, named=Named.DATA_VOLUME)}})
    code, out, _ = cli.run("query", "data-volume", "--host", EU1)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == list(volume)
    assert lines[2].split() == ["1234", "5", *row[2:]]
    assert len(lines[1]) >= len(lines[2].rstrip())
    assert lines[-1] == "(1 rows)"


def test_failed_node_and_silent_node_are_reported_while_the_rest_prints(cli: Cli):
    _answer(
        cli,
        {
            EU1: {"stdout": partial([["/a", 3]])},
            EU2: {"state": "Failed", "exit_code": 1, "error": "docker: image pull failed"},
        },
    )
    cli.orchestrator._nodes[2]["ConnectionState"]["Status"] = "DISCONNECTED"
    code, out, err = cli.run("query", "error-analysis", "--format", "json")
    assert code == 3
    assert json.loads(out) == [{"request": "/a", "requests": 3}]
    assert f"node {EU2} (eu-1): FAILED: execution failed: docker: image pull failed" in err
    assert f"node {US1} (us-1): FAILED: no execution (node DISCONNECTED" in err
    assert "partial result: 1 of 3 nodes answered in full" in err


def test_an_answer_cut_at_2_kib_without_a_published_copy_is_a_gap_not_a_short_table(cli: Cli):
    whole = partial([[f"/path-{i}", i] for i in range(200)])
    _answer(
        cli,
        {
            EU1: {"stdout": whole[:2048], "stdout_truncated": True},
            EU2: {"stdout": partial([["/b", 2]])},
        },
    )
    code, out, err = cli.run("query", "throttled-ips", "--region", "eu-1", "--format", "json")
    assert code == 3
    assert json.loads(out) == [{"request": "/b", "requests": 2}]
    assert f"node {EU1} (eu-1): FAILED: its answer did not arrive whole (truncated)" in err


def test_node_warnings_are_shown_with_the_node_and_counted_in_the_summary(cli: Cli):
    noisy = partial(
        [["/a", 1]],
        diagnostics=(
            "query: log folder: read 3 files, pruned 0 outside the window, 90 events, "
            "12 malformed lines skipped",
            "query: warning: /app/logs/application.log.2.gz: truncated gzip; read what came "
            "before it",
        ),
        malformed=12,
    )
    quiet = partial(
        [["/a", 2]],
        diagnostics=("query: log folder: read 1 files, 0 malformed lines skipped",),
        malformed=None,
    )
    _answer(cli, {EU1: {"stdout": noisy}, EU2: {"stdout": quiet}})
    code, _, err = cli.run("query", "error-analysis", "--region", "eu-1")
    assert code == 0, err
    assert f"node {EU1} (eu-1): query: log folder: read 3 files" in err
    assert f"node {EU1} (eu-1): query: warning: /app/logs/application.log.2.gz" in err
    assert f"node {EU2} (eu-1): query" not in err  # nothing skipped, nothing to warn about
    assert "12 malformed lines skipped (1 did not report how many)" in err


def test_values_from_logs_cannot_drive_the_terminal_or_a_spreadsheet(cli: Cli):
    hostile = [["\x1b[2J/a\r\nforged  row", 2], ['=HYPERLINK("http://x")', 1], ["-", 1]]
    _answer(cli, {EU1: {"stdout": partial(hostile)}})
    code, table, _ = cli.run("query", "error-analysis", "--host", EU1)
    assert code == 0
    assert "\x1b" not in table and "\r" not in table
    assert "\\x1b[2J/a\\r\\nforged  row" in table
    assert len(table.splitlines()) == 2 + 3 + 1
    code, out, _ = cli.run("query", "error-analysis", "--host", EU1, "--format", "csv")
    cells = [row[0] for row in csv.reader(io.StringIO(out))][1:]
    assert cells == ["\\x1b[2J/a\\r\\nforged  row", "-", '\'=HYPERLINK("http://x")']
    code, out, _ = cli.run("query", "error-analysis", "--host", EU1, "--format", "json")
    assert json.loads(out)[0]["request"] == hostile[0][0]  # JSON escapes by itself


def test_timeout_names_the_job_and_how_to_look_later(cli: Cli):
    _answer(cli, {EU1: {"stdout": "", "delay": 30}})
    code, out, err = cli.run("query", "peak-traffic", "--host", EU1, "--timeout", "0.3")
    assert code == 4
    assert out == ""
    job_id = cli.orchestrator.job_by_name(cli.submitted[0]["Name"])["ID"]
    assert f"job {job_id} did not finish within 0.3s" in err
    assert f"bacalhau job describe {job_id}" in err


BAD_INPUT = [
    (("query", "errors"), "query NAME: unknown query 'errors'"),
    (("query", "error-analysis", "--region", "mars-1"), "--region: unknown region(s) mars-1"),
    (("query", "error-analysis", "--host", "node-9"), "--host: unknown host(s) node-9"),
    (("query", "error-analysis", "--since", "noon"), "--since: not a time: 'noon'"),
    (("query", "error-analysis", "--since", "999999999d"), "--since: too far back"),
    (("query", "--sql", "  "), "--sql: empty; expected a SELECT"),
    (("query", "error-analysis", "--stack", "dev prod"), "--stack: 'dev prod' is not a stack"),
    (("query", "error-analysis", "--stack", "../x"), "--stack: '../x' is not a stack name"),
    (("query", "error-analysis", "--timeout", "nan"), "expected a positive, finite number"),
    (("query", "error-analysis", "--timeout", "inf"), "expected a positive, finite number"),
    (("query", "error-analysis", "--format", "xml"), "(choose from 'table', 'json', 'csv')"),
    (("query", "error-analysis", "--limit", "0"), "--limit: must be at least 1, got 0"),
    (("archive", "top-referring-sites", "--date", "2025/01/15"),
     "--date: '2025/01/15' is not a date; expected YYYY-MM-DD, YYYY-MM or YYYY"),
    (("archive", "top-referring-sites", "--from", "2025-01-20", "--to", "2025-01-10"),
     "--from (2025-01-20) must not be after --to (2025-01-10)"),
    (("archive", "top-referring-sites", "--from", "2024-01-01", "--to", "2025-06-30"),
     "--from/--to: 547 days is more than 366"),
    (("archive", "nope", "--date", "2025-01-15"), "archive NAME: unknown query 'nope'"),
    (("archive", "top-referring-sites", "--region", "mars-1", "--date", "2025-01-15"),
     "--region: unknown region(s) mars-1"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT)
def test_bad_input_is_one_line_before_any_api_call(cli: Cli, argv, message):
    code, out, err = cli.run(*argv)
    assert (code, out) == (2, ""), err
    assert message in err
    assert "Traceback" not in err
    assert cli.orchestrator.requests == []


def test_a_missing_name_or_sql_is_a_usage_error(cli: Cli):
    code, _, err = cli.run("query")
    assert code == 2 and "one of the arguments NAME --sql is required" in err


def test_flags_before_the_command_are_accepted(cli: Cli):
    _answer(cli, {EU1: {"stdout": partial([["/a", 1]])}})
    cli.runtime.stdout, cli.runtime.stderr = io.StringIO(), io.StringIO()
    argv = ["--outputs", str(cli.outputs_path), "--format", "json", "query", "error-analysis"]
    code = main([*argv, "--host", EU1], cli.runtime)
    assert code == 0, cli.runtime.stderr.getvalue()
    assert json.loads(cli.runtime.stdout.getvalue()) == [{"request": "/a", "requests": 1}]


def test_query_help_lists_the_query_names(cli: Cli):
    code, out, _ = cli.run("query", "--help")
    assert code == 0
    assert "named queries: content-analysis, data-volume, error-analysis" in out
    code, out, _ = cli.run("archive", "--help")
    assert "top-referring-sites" in out and "YYYY-MM-DD, YYYY-MM or YYYY" in out


@pytest.mark.parametrize("url", ["127.0.0.1:1234", "ftp://host/", "http://", "file:///x"])
def test_an_api_url_that_is_not_http_is_a_one_line_error(cli: Cli, url: str):
    cli.write_outputs(orchestratorApiUrl=url)
    code, _, err = cli.run("query", "error-analysis")
    assert code == 2
    assert f"stack output 'orchestratorApiUrl': {url!r} is not an http(s) URL" in err
    assert "Traceback" not in err


def test_missing_output_key_is_named(cli: Cli):
    cli.write_outputs(images=None)
    code, _, err = cli.run("query", "error-analysis")
    assert code == 2
    assert "stack output 'images' is missing from stack 'dev'" in err
    assert cli.orchestrator.requests == []


def test_per_region_images_and_api_key_from_the_environment(cli: Cli):
    cli.orchestrator.api_key = "s3cret"
    cli.runtime.environ = {"BACALHAU_API_KEY": "s3cret"}
    cli.write_outputs(images={"eu-1": {"agent": "eu/agent@sha256:1"}, "us-1": {"agent": "x"}})
    _answer(cli, {EU1: {"stdout": partial([])}})
    code, _, err = cli.run("query", "error-analysis", "--host", EU1)
    assert code == 0, err
    assert cli.submitted[0]["Tasks"][0]["Engine"]["Params"]["Image"] == "eu/agent@sha256:1"


def test_status_lists_nodes_by_region_and_registered_jobs(cli: Cli, make_registered_job):
    logstash = make_registered_job("dev-eu-1-logstash")
    compactor = make_registered_job("dev-eu-1-compactor")
    cli.orchestrator.set_job_state(compactor, "Failed", "boom")
    cli.orchestrator._nodes.pop()  # us-1's node never joined
    cli.write_outputs(jobs={"eu-1": {"logstash": logstash, "compactor": compactor}})
    code, out, err = cli.run("status", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    nodes = [(r["region"], r["node"], r["connection"]) for r in rows if r["what"] == "node"]
    assert nodes == [
        ("eu-1", EU1, "CONNECTED"),
        ("eu-1", EU2, "CONNECTED"),
        ("us-1", US1, "MISSING"),
    ]
    jobs = [(r["kind"], r["job_id"], r["version"], r["state"]) for r in rows if r["what"] == "job"]
    assert jobs == [("compactor", compactor, 1, "Failed"), ("logstash", logstash, 1, "Running")]
    code, table, _ = cli.run("status")
    assert code == 0
    assert table.startswith("Nodes\nregion") and "\nJobs\nregion" in table


def test_job_that_matched_no_node_is_a_failure_not_an_empty_table(cli: Cli):
    def no_nodes(job: dict[str, object]) -> None:
        cli.orchestrator.set_job_state(str(job["ID"]), "Failed", "no matching nodes")

    cli.on_submit(no_nodes)
    cli.write_outputs(nodes=None)
    cli.orchestrator._nodes.clear()
    code, out, err = cli.run("query", "error-analysis", "--format", "json")
    assert code == 3
    assert json.loads(out) == []
    assert "FAILED: no execution; job Failed: no matching nodes" in err


def test_status_without_jobs_output_still_lists_nodes(cli: Cli):
    cli.write_outputs(jobs=None)
    code, out, err = cli.run("status", "--format", "csv")
    assert code == 0
    assert len(list(csv.reader(io.StringIO(out)))) == 1 + 3
    assert "stack output 'jobs' is missing" in err
