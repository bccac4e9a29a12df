"""`archive`: one batch job per region, concurrently, each reading only its own bucket; merged.

The compute side is tests/ops/compute.py: the real agent over what Bacalhau's S3 input would
download, results cut at 2 KiB in the API and published whole, as v1.9.3 does.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main as agent_main
from agent.generate import backfill_lines
from agent.named import Named
from agent.s3 import make_client
from tests.ops.compute import ComputeNodes, Node, reference_rows
from tests.ops.conftest import Cli, partial
from tests.support.s3_server import moto_s3_server

pytestmark = pytest.mark.s3
TOP_SITES = Named.TOP_REFERRING_SITES
REGIONS = ("ap-1", "eu-1", "us-1")
NODE = {region: f"bacalhau-logs-dev-{region}-node-1" for region in REGIONS}
BUCKET = {region: f"bacalhau-logs-dev-{region}-archive" for region in REGIONS}
# (day, hour, seed, events) per region; 2025-01-16 is outside the range asked for.
ARCHIVE = {
    "ap-1": [("2025-01-14", 22, 1, 400), ("2025-01-15", 3, 2, 300), ("2025-01-16", 1, 3, 300)],
    "eu-1": [("2025-01-15", 10, 4, 500), ("2025-01-15", 11, 5, 200)],
    "us-1": [("2025-01-14", 5, 6, 300), ("2025-01-16", 0, 7, 200)],
}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = make_client(s3_endpoint, "us-east-1")
    for bucket in BUCKET.values():
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
    return client


@pytest.fixture
def archive_cli(cli: Cli, s3_endpoint: str, s3: Any, make_registered_job) -> Cli:
    jobs = {}
    for region in REGIONS:
        compactor = make_registered_job(f"dev-{region}-compactor")
        # As the stack registers it: the endpoint and region the region's nodes use for S3.
        cli.orchestrator.jobs[compactor]["Tasks"][0]["Engine"]["Params"]["Parameters"] = [
            "compact", "--bucket", BUCKET[region], "--endpoint-url", "http://storage:9000",
            "--prefix", "logs/", "--region-name", "us-east-1",
        ]  # fmt: skip
        jobs[region] = {"compactor": compactor}
    cli.orchestrator._nodes.clear()
    for region in REGIONS:
        cli.orchestrator.add_node(NODE[region], {"region": region, "host": NODE[region]})
    cli.write_outputs(
        s3Endpoint=s3_endpoint,
        buckets=BUCKET,
        jobs=jobs,
        nodes={region: [NODE[region]] for region in REGIONS},
    )
    cli.runtime.s3_client = lambda _endpoint, region, _keys: make_client(s3_endpoint, region)
    return cli


def _fill_archive(s3: Any, s3_endpoint: str, reference: Path) -> None:
    """Raw gzip objects per hour; one hour compacted by the real compactor. Events inside the
    asked range also go to ``reference`` (one folder, all regions)."""
    reference.mkdir(parents=True, exist_ok=True)
    for region, hours in ARCHIVE.items():
        for day, hour, seed, count in hours:
            start = datetime.fromisoformat(f"{day}T{hour:02d}:00:00")
            end = start.replace(minute=59, second=59)
            text = "".join(backfill_lines(seed, count, start, end))
            key = f"logs/region={region}/dt={day}/hour={hour:02d}/node-1-{seed}.gz"
            s3.put_object(Bucket=BUCKET[region], Key=key, Body=gzip.compress(text.encode()))
            if day != "2025-01-16":
                (reference / f"{region}-{seed}.log").write_text(text)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = agent_main(
            ["compact", "--bucket", BUCKET["eu-1"], "--endpoint-url", s3_endpoint, "--once"]
        )
    assert code == 0, stderr.getvalue()
    listed = s3.list_objects_v2(Bucket=BUCKET["eu-1"], Prefix="logs/")["Contents"]
    assert sum(o["Key"].endswith("compacted.parquet") for o in listed) == 2


def test_three_regions_each_read_their_own_bucket_concurrently_into_one_answer(
    archive_cli: Cli, s3: Any, s3_endpoint: str, tmp_path: Path
):
    _fill_archive(s3, s3_endpoint, tmp_path / "reference")
    nodes = [Node(NODE[r], r, tmp_path / "unused") for r in REGIONS]
    with ComputeNodes(archive_cli.orchestrator, nodes, s3) as compute:
        code, out, err = archive_cli.run(
            "archive", "top-referring-sites", "--from", "2025-01-14", "--to", "2025-01-15",
            "--limit", "25", "--format", "json",
        )  # fmt: skip
    assert code == 0, err
    reference = reference_rows(
        tmp_path / "reference", "--named", "top-referring-sites", "--limit", "25"
    )
    assert json.loads(out) == reference and reference
    # Every job was submitted before any node answered: the regions ran side by side.
    assert max(compute.submitted_at.values()) < min(compute.answered_at.values())
    jobs = {job["Constraints"][0]["Values"][0]: job for job in archive_cli.submitted}
    assert sorted(jobs) == list(REGIONS)
    for region, job in jobs.items():
        task = job["Tasks"][0]
        assert job["Type"] == "batch"
        assert [(i["Target"], i["Source"]["Params"]) for i in task["InputSources"]] == [
            (
                f"/archive/dt={day}",
                {
                    "Bucket": BUCKET[region],
                    "Key": f"logs/region={region}/dt={day}/",
                    "Region": "us-east-1",
                    "Endpoint": "http://storage:9000",
                },
            )
            for day in ("2025-01-14", "2025-01-15")
        ]
        assert task["Publisher"]["Params"]["Bucket"] == BUCKET[region]
        # Only results leave a region: its bucket holds its own job's answer, no other.
        keys = [
            item["Key"]
            for item in s3.list_objects_v2(Bucket=BUCKET[region], Prefix="ops-results/").get(
                "Contents", []
            )
        ]
        job_id = archive_cli.orchestrator.job_by_name(job["Name"])["ID"]
        assert keys and all(k.startswith(f"ops-results/{job_id}/") for k in keys)
    assert compute.endpoints_seen == {"http://storage:9000"}
    # What was downloaded: every object under each day's prefix, compacted hours included.
    assert re.search(
        r"eu-1: read 4 objects, [\d.]+ KiB \(2 compacted Parquet, 2 raw\) from "
        r"s3://bacalhau-logs-dev-eu-1-archive/logs/region=eu-1/ \(2 days, one input each\)",
        err,
    )
    assert "ap-1: read 2 objects" in err and "us-1: read 1 objects" in err
    assert "merged answer from 3 jobs in 3 regions (ap-1, eu-1, us-1)" in err


def test_a_date_prefix_is_one_input_and_a_year_is_accepted(archive_cli: Cli, s3: Any):
    nodes = [Node(NODE[r], r, Path("unused")) for r in REGIONS]
    with ComputeNodes(archive_cli.orchestrator, nodes, s3):
        code, _, err = archive_cli.run(
            "archive", "top-referring-sites", "--region", "eu-1", "--date", "2025"
        )
    assert code == 0, err
    (job,) = archive_cli.submitted
    (source,) = job["Tasks"][0]["InputSources"]
    assert source["Target"] == "/archive"
    assert source["Source"]["Params"]["Key"] == "logs/region=eu-1/dt=2025*"
    assert "eu-1: read 0 objects, 0 B" in err


def test_a_failed_attempt_that_a_retry_replaced_is_not_a_failure(archive_cli: Cli):
    """v1.9.3 retries a failed batch partition, usually on another node, and never sets
    NextExecution (pkg/models/execution.go; BatchServiceJobScheduler in
    pkg/orchestrator/scheduler/batch_service_job.go): the latest attempt counts."""
    archive_cli.orchestrator.add_node("eu-1-node-2", {"region": "eu-1", "host": "eu-1-node-2"})

    def retried(job: dict[str, Any]) -> None:
        archive_cli.orchestrator.add_execution(
            job["ID"], NODE["eu-1"], state="Failed", error="s3: connection reset"
        )
        answer = partial([["https://a.example", 5]], ("referrer", "requests"), TOP_SITES)
        archive_cli.orchestrator.add_execution(job["ID"], "eu-1-node-2", stdout=answer)

    archive_cli.on_submit(retried)
    code, out, err = archive_cli.run(
        "archive", "top-referring-sites", "--region", "eu-1", "--date", "2025-01-15",
        "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)[0]["referrer"] == "https://a.example"
    assert (
        f"eu-1: an attempt on node {NODE['eu-1']} ended s3: connection reset; "
        "a retry replaced it" in err
    )
    assert "FAILED" not in err
