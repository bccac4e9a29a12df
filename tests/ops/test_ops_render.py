"""Rendering ops and batch queries from jobs/queries for a scope."""

from __future__ import annotations

import pytest

from infra.bacalhau.spec import validate
from infra.ops.render import ArchiveTarget, Kind, Query, check_query, known_queries, render_query
from infra.ops.scope import Scope, UsageError, Window

IMAGE = "registry:5000/agent@sha256:" + "a" * 64
SCOPE = Scope(("eu-1", "us-1"))


def _parameters(job):
    return job["Tasks"][0]["Engine"]["Params"]["Parameters"]


def test_named_ops_query_with_its_own_spec_gets_scope_window_and_unique_name():
    job = render_query(
        Kind.OPS,
        Query(name="error-analysis"),
        name="dev-ops-error-analysis-x",
        scope=SCOPE,
        window=Window("2025-01-01T00:00:00", "2025-01-02T00:00:00"),
        agent_image=IMAGE,
    )
    assert validate(job) == []
    assert job["Name"] == "dev-ops-error-analysis-x"
    assert job["Type"] == "ops"
    assert job["Constraints"] == SCOPE.constraints()
    assert job["Tasks"][0]["Engine"]["Params"]["Image"] == IMAGE
    assert _parameters(job) == [
        "query", "--logs", "/app/logs", "--named", "error-analysis",
        "--since", "2025-01-01T00:00:00", "--until", "2025-01-02T00:00:00", "--format", "json",
    ]  # fmt: skip


def test_sql_and_agent_only_names_reuse_the_kind_shape_and_drop_open_window_flags():
    sql = render_query(
        Kind.OPS,
        Query(sql="SELECT count(*) AS n FROM logs"),
        name="n",
        scope=SCOPE,
        window=Window(),
        agent_image=IMAGE,
    )
    assert _parameters(sql) == [
        "query", "--logs", "/app/logs", "--sql", "SELECT count(*) AS n FROM logs",
        "--format", "json",
    ]  # fmt: skip
    volume = render_query(
        Kind.OPS,
        Query(name="data-volume"),
        name="v",
        scope=SCOPE,
        window=Window(since="2025-01-01T00:00:00"),
        agent_image=IMAGE,
    )
    assert _parameters(volume)[3:7] == ["--named", "data-volume", "--since", "2025-01-01T00:00:00"]
    assert "--until" not in _parameters(volume)


def test_batch_query_reads_the_region_archive_and_publishes_to_its_bucket():
    target = ArchiveTarget("b-eu-1", "logs/", "http://storage:9000", "us-east-1", "2025-01-1")
    job = render_query(
        Kind.BATCH,
        Query(name="top-referring-sites"),
        name="dev-batch-x",
        scope=Scope(("eu-1",)),
        window=Window("2025-01-10T00:00:00", "2025-01-20T00:00:00"),
        agent_image=IMAGE,
        archive=target,
    )
    task = job["Tasks"][0]
    assert task["InputSources"][0]["Source"]["Params"] == {
        "Bucket": "b-eu-1",
        "Key": "logs/region=eu-1/dt=2025-01-1*",
        "Region": "us-east-1",
        "Endpoint": "http://storage:9000",
    }
    assert task["Publisher"]["Type"] == "s3"
    assert task["Publisher"]["Params"]["Bucket"] == "b-eu-1"
    assert task["Publisher"]["Params"]["Key"] == "ops-results/{jobID}/{executionID}/"
    assert job["Constraints"] == [{"Key": "region", "Operator": "in", "Values": ["eu-1"]}]


def test_known_queries_are_spec_files_plus_agent_named_queries():
    assert "throttled-ips" in known_queries(Kind.OPS)
    assert "top-user-agents" in known_queries(Kind.BATCH)
    with pytest.raises(UsageError) as raised:
        check_query(Kind.OPS, Query(name="errors"))
    assert "query NAME: unknown query 'errors'; expected one of content-analysis" in str(
        raised.value
    )
