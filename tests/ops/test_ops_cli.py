"""The operator CLI end to end against the stand-in orchestrator."""

from __future__ import annotations

import csv
import io
import json

from tests.ops.conftest import AGENT_IMAGE, NODES, Cli, rows_json

EU1, EU2 = NODES["eu-1"]
(US1,) = NODES["us-1"]


def _answer(cli: Cli, per_node: dict[str, dict[str, object]]) -> None:
    """Each submitted job gets one execution per node in ``per_node`` (add_execution kwargs)."""

    def react(job: dict[str, object]) -> None:
        for node, execution in per_node.items():
            cli.orchestrator.add_execution(str(job["ID"]), node, **execution)  # type: ignore[arg-type]

    cli.on_submit(react)


def test_rows_merge_across_nodes_with_node_and_region(cli: Cli):
    _answer(
        cli,
        {
            EU1: {"stdout": rows_json([{"request": "/a", "requests": 3}]), "delay": 0.05},
            EU2: {"stdout": rows_json([{"request": "/b", "requests": 2}])},
            US1: {"stdout": rows_json([{"request": "/a", "requests": 1}])},
        },
    )
    code, out, err = cli.run("query", "error-analysis", "--format", "json")
    assert code == 0, err
    assert json.loads(out) == [
        {"node": EU1, "region": "eu-1", "request": "/a", "requests": 3},
        {"node": EU2, "region": "eu-1", "request": "/b", "requests": 2},
        {"node": US1, "region": "us-1", "request": "/a", "requests": 1},
    ]
    (job,) = cli.submitted
    assert job["Type"] == "ops"
    assert job["Name"].startswith("dev-ops-error-analysis-")
    assert job["Constraints"] == [{"Key": "region", "Operator": "in", "Values": ["eu-1", "us-1"]}]
    assert job["Tasks"][0]["Engine"]["Params"]["Image"] == AGENT_IMAGE
    assert "Completed" in err and "submitted dev-ops-error-analysis-" in err


def test_host_and_region_flags_reach_the_submitted_constraints(cli: Cli):
    _answer(cli, {EU2: {"stdout": rows_json([{"n": 1}])}})
    code, out, err = cli.run(
        "query", "--sql", "SELECT count(*) AS n FROM logs", "--region", "eu-1", "--host", EU2,
        "--since", "2025-01-01T00:00:00", "--format", "csv",
    )  # fmt: skip
    assert code == 0, err
    assert list(csv.reader(io.StringIO(out))) == [["node", "region", "n"], [EU2, "eu-1", "1"]]
    (job,) = cli.submitted
    assert job["Constraints"] == [
        {"Key": "region", "Operator": "in", "Values": ["eu-1"]},
        {"Key": "host", "Operator": "in", "Values": [EU2]},
    ]
    parameters = job["Tasks"][0]["Engine"]["Params"]["Parameters"]
    assert parameters[3:7] == [
        "--sql",
        "SELECT count(*) AS n FROM logs",
        "--since",
        "2025-01-01T00:00:00",
    ]


def test_table_output_is_aligned(cli: Cli):
    _answer(cli, {EU1: {"stdout": rows_json([{"requests": 1234}])}})
    code, out, _ = cli.run("query", "data-volume", "--host", EU1)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["node", "region", "requests"]
    assert lines[2].split() == [EU1, "eu-1", "1234"]
    assert len(lines[1]) >= len(lines[2].rstrip())
    assert lines[-1] == "(1 rows)"


def test_failed_node_and_silent_node_are_reported_while_the_rest_prints(cli: Cli):
    _answer(
        cli,
        {
            EU1: {"stdout": rows_json([{"request": "/a", "requests": 3}])},
            EU2: {"state": "Failed", "exit_code": 1, "error": "docker: image pull failed"},
        },
    )
    cli.orchestrator._nodes[2]["ConnectionState"]["Status"] = "DISCONNECTED"
    code, out, err = cli.run("query", "error-analysis", "--format", "json")
    assert code == 3
    assert json.loads(out) == [{"node": EU1, "region": "eu-1", "request": "/a", "requests": 3}]
    assert f"node {EU2} (eu-1): FAILED: execution failed: docker: image pull failed" in err
    assert f"node {US1} (us-1): FAILED: no execution (node DISCONNECTED" in err
    assert "partial result: 1 of 3 nodes answered in full" in err


def test_timeout_names_the_job_and_how_to_look_later(cli: Cli):
    _answer(cli, {EU1: {"stdout": "[]", "delay": 30}})
    code, out, err = cli.run("query", "peak-traffic", "--host", EU1, "--timeout", "0.3")
    assert code == 4
    assert out == ""
    job_id = cli.orchestrator.job_by_name(cli.submitted[0]["Name"])["ID"]
    assert f"job {job_id} did not finish within 0.3s" in err
    assert f"bacalhau job describe {job_id}" in err


def test_truncated_output_is_flagged_and_whole_rows_marked(cli: Cli):
    full = rows_json([{"remote_addr": f"10.0.0.{i}", "requests": i} for i in range(1, 4)])
    _answer(
        cli,
        {
            EU1: {"stdout": full[: full.index("10.0.0.3")], "stdout_truncated": True},
            EU2: {"stdout": rows_json([{"remote_addr": "10.0.0.9", "requests": 9}])},
        },
    )
    code, out, err = cli.run("query", "throttled-ips", "--region", "eu-1", "--format", "json")
    assert code == 3
    rows = json.loads(out)
    assert [(r["node"], r["remote_addr"], r["truncated"]) for r in rows] == [
        (EU1, "10.0.0.1", True),
        (EU1, "10.0.0.2", True),
        (EU2, "10.0.0.9", False),
    ]
    assert f"node {EU1} (eu-1): INCOMPLETE: the orchestrator truncated its output; 2 whole" in err


def test_bad_names_flags_and_outputs_fail_before_any_api_call(cli: Cli):
    cases = [
        (("query", "errors"), "query NAME: unknown query 'errors'"),
        (("query", "error-analysis", "--region", "mars-1"), "--region: unknown region(s) mars-1"),
        (("query", "error-analysis", "--host", "node-9"), "--host: unknown host(s) node-9"),
        (("query", "error-analysis", "--since", "noon"), "--since: not a time: 'noon'"),
        (("archive", "top-referring-sites", "--region", "eu-1", "--date", "2025/01/15"),
         "--date: '2025/01/15' is not a date; expected YYYY-MM-DD"),
        (("archive", "top-referring-sites", "--region", "eu-1", "--from", "2025-01-20",
          "--to", "2025-01-10"), "--from (2025-01-20) must not be after --to (2025-01-10)"),
        (("archive", "nope", "--region", "eu-1", "--date", "2025-01-15"),
         "archive NAME: unknown query 'nope'"),
        (("archive", "top-referring-sites", "--region", "mars-1", "--date", "2025-01-15"),
         "--region: unknown region(s) mars-1"),
    ]  # fmt: skip
    for argv, message in cases:
        code, out, err = cli.run(*argv)
        assert (code, out) == (2, ""), argv
        assert message in err, (argv, err)
    code, _, err = cli.run("query")
    assert code == 2 and "one of the arguments name --sql is required" in err
    assert cli.orchestrator.requests == []


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
    _answer(cli, {EU1: {"stdout": "[]"}})
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
