"""Rendering ops and batch queries from jobs/queries, one job per region."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra import aws_policies
from infra.bacalhau.spec import validate
from infra.ops.layout import RESULTS_PREFIX
from infra.ops.render import (
    QUERIES_DIR,
    Kind,
    Query,
    RegionTarget,
    check_query,
    known_queries,
    render_query,
)
from infra.ops.scope import Scope, UsageError, Window, resolve_archive_range

IMAGE = "registry:5000/agent@sha256:" + "a" * 64
TARGET = RegionTarget("b-eu-1", "logs/", "http://storage:9000", "us-east-1")


def _parameters(job):
    return job["Tasks"][0]["Engine"]["Params"]["Parameters"]


def test_named_ops_query_gets_scope_window_partial_output_and_its_regions_publisher():
    job = render_query(
        Kind.OPS,
        Query(name="error-analysis"),
        name="dev-ops-error-analysis-eu-1-x",
        scope=Scope(("eu-1",), ("eu-1-node-2",)),
        window=Window("2025-01-01T00:00:00", "2025-01-02T00:00:00"),
        agent_image=IMAGE,
        target=TARGET,
    )
    assert validate(job) == []
    assert job["Type"] == "ops"
    assert job["Constraints"] == Scope(("eu-1",), ("eu-1-node-2",)).constraints()
    assert job["Tasks"][0]["Engine"]["Params"]["Image"] == IMAGE
    assert _parameters(job) == [
        "query", "--logs", "/app/logs", "--named", "error-analysis",
        "--since", "2025-01-01T00:00:00", "--until", "2025-01-02T00:00:00", "--format", "json",
        "--partial",
    ]  # fmt: skip
    assert job["Tasks"][0]["Publisher"] == {
        "Type": "s3",
        "Params": {
            "Bucket": "b-eu-1",
            "Key": "ops-results/{jobID}/{executionID}/",
            "Endpoint": "http://storage:9000",
            "Region": "us-east-1",
            "Encoding": "plain",
        },
    }


def test_sql_and_agent_only_names_reuse_the_kind_shape_and_pass_limit_and_threshold():
    sql = render_query(
        Kind.OPS,
        Query(sql="SELECT count(*) AS n FROM logs", limit=3),
        name="n",
        scope=Scope(("eu-1",)),
        window=Window(),
        agent_image=IMAGE,
        target=TARGET,
    )
    assert _parameters(sql) == [
        "query", "--logs", "/app/logs", "--sql", "SELECT count(*) AS n FROM logs",
        "--format", "json", "--limit", "3", "--partial",
    ]  # fmt: skip
    volume = render_query(
        Kind.OPS,
        Query(name="data-volume", threshold=7),
        name="v",
        scope=Scope(("eu-1",)),
        window=Window(since="2025-01-01T00:00:00"),
        agent_image=IMAGE,
        target=TARGET,
    )
    assert _parameters(volume)[3:7] == ["--named", "data-volume", "--since", "2025-01-01T00:00:00"]
    assert "--until" not in _parameters(volume)
    assert _parameters(volume)[-3:] == ["--threshold", "7", "--partial"]


def _batch(span):
    return render_query(
        Kind.BATCH,
        Query(name="top-referring-sites"),
        name="dev-batch-x",
        scope=Scope(("eu-1",)),
        window=span.window,
        agent_image=IMAGE,
        target=TARGET,
        archive=span,
    )


def test_a_range_reads_one_input_per_day_never_a_wider_prefix():
    """Bacalhau's S3 source lists a Key prefix (pkg/storage/s3/storage.go explodeKey) and a
    task's input targets must differ (pkg/models/task.go validateInputSources)."""
    job = _batch(resolve_archive_range(None, "2024-12-31", "2025-01-01"))
    task = job["Tasks"][0]
    assert [(i["Target"], i["Source"]["Params"]) for i in task["InputSources"]] == [
        (
            f"/archive/dt={day}",
            {
                "Bucket": "b-eu-1",
                "Key": f"logs/region=eu-1/dt={day}/",
                "Region": "us-east-1",
                "Endpoint": "http://storage:9000",
            },
        )
        for day in ("2024-12-31", "2025-01-01")
    ]
    assert "202*" not in json.dumps(job)
    assert len({i["Target"] for i in task["InputSources"]}) == len(task["InputSources"])
    assert _parameters(job)[5:9] == [
        "--since", "2024-12-31T00:00:00", "--until", "2025-01-02T00:00:00",
    ]  # fmt: skip
    assert task["Publisher"]["Params"]["Bucket"] == "b-eu-1"
    assert validate(job) == []


@pytest.mark.parametrize("date", ["2025", "2025-01", "2025-01-15"])
def test_a_year_month_or_day_is_one_prefix_input(date):
    job = _batch(resolve_archive_range(date, None, None))
    (source,) = job["Tasks"][0]["InputSources"]
    assert source["Target"] == "/archive"
    assert source["Source"]["Params"]["Key"] == f"logs/region=eu-1/dt={date}*"
    assert "--since" not in _parameters(job)


def test_every_query_spec_publishes_plainly_under_the_prefix_nodes_may_write():
    """pkg/s3/types.go (v1.9.3) PublisherSpec knows Bucket, Key, Endpoint, Region, Encoding
    (plain or gzip); ``Compress`` is no parameter of it. The key must sit under the prefix the
    AWS node role may write (infra/aws_policies.py)."""
    policy = aws_policies.compute_node_policy(
        bucket_arn="arn:aws:s3:::b",
        prefix="logs/",
        kms_key_arn=None,
        repository_arns=["arn:aws:ecr:r:1:repository/agent"],
        search_domain_arns=[],
        ca_parameter_arn=None,
    )
    writable = [
        resource.removeprefix("arn:aws:s3:::b/").rstrip("*")
        for statement in policy["Statement"]
        if "s3:PutObject" in statement["Action"]
        for resource in [statement["Resource"]]
    ]
    specs = sorted(QUERIES_DIR.glob("*/*.yaml"))
    assert len(specs) >= 7
    for path in specs:
        publisher = yaml.safe_load(path.read_text())["Tasks"][0]["Publisher"]
        assert set(publisher["Params"]) == {"Bucket", "Key", "Endpoint", "Region", "Encoding"}
        assert publisher["Params"]["Encoding"] == "plain"
        key = publisher["Params"]["Key"]
        assert key.startswith(RESULTS_PREFIX) and RESULTS_PREFIX in writable, path


def test_ops_specs_differ_only_in_the_query_they_run():
    """Queries without their own file run in the first spec's shape: the files must not drift."""
    shapes = set()
    for path in sorted((QUERIES_DIR / "ops").glob("*.yaml")):
        text = path.read_text().replace(path.stem, "NAME")
        shapes.add(text)
    assert len(shapes) == 1


def test_known_queries_are_spec_files_plus_agent_named_queries(tmp_path: Path):
    assert "throttled-ips" in known_queries(Kind.OPS)
    assert "top-user-agents" in known_queries(Kind.BATCH)
    with pytest.raises(UsageError) as raised:
        check_query(Kind.OPS, Query(name="errors"))
    assert "query NAME: unknown query 'errors'; expected one of content-analysis" in str(
        raised.value
    )
