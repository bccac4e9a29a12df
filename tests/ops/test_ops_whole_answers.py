"""Answers longer than the 2 KiB Bacalhau v1.9.3 returns through its API arrive whole.

The compute side (tests/ops/compute.py) runs the real agent on each node's logs, cuts stdout at
2 KiB as pkg/executor/results.go does on the compute node, and publishes the result directory
as the job's S3 publisher would (pkg/publisher/s3/publisher.go).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.generate import backfill_lines
from agent.s3 import make_client
from tests.ops.compute import API_OUTPUT_LIMIT, ComputeNodes, Node, reference_rows
from tests.ops.conftest import NODES, Cli
from tests.support.s3_server import moto_s3_server

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def nodes(tmp_path: Path) -> tuple[list[Node], Path]:
    """Every node of the stand-in with its own logs; ``all`` holds every node's events."""
    everything = tmp_path / "all"
    everything.mkdir()
    result = []
    for index, (region, names) in enumerate(sorted(NODES.items())):
        for offset, name in enumerate(names):
            folder = tmp_path / name
            folder.mkdir()
            start = datetime(2025, 1, 15, offset, 0, 0)
            lines = backfill_lines(7 + index, 1500, start, start.replace(hour=offset + 3))
            (folder / "application.log").write_text("".join(lines))
            shutil.copy(folder / "application.log", everything / f"{name}.log")
            result.append(Node(name, region, folder))
    return result, everything


@pytest.fixture
def whole_cli(cli: Cli, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = make_client(s3_endpoint, "us-east-1")
    for region in NODES:
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=f"bacalhau-logs-dev-{region}-archive")
    # The local stack's outputs as the Automation API reads them: MinIO keys in clear.
    cli.write_outputs(s3Endpoint=s3_endpoint, minioAccessKey="testing", minioSecretKey="testing")
    return cli


def test_an_answer_longer_than_2_kib_arrives_whole_and_merged(whole_cli: Cli, nodes, s3_endpoint):
    node_list, everything = nodes
    client = make_client(s3_endpoint, "us-east-1")
    with ComputeNodes(whole_cli.orchestrator, node_list, client) as compute:
        code, out, err = whole_cli.run(
            "query", "security-analysis", "--threshold", "3", "--format", "json"
        )
    assert code == 0, err
    reference = reference_rows(everything, "--named", "security-analysis", "--threshold", "3")
    assert json.loads(out) == reference
    assert len(json.dumps(reference)) > 4 * API_OUTPUT_LIMIT
    cut = [e for e in compute.executions if len(e["stdout"]) > API_OUTPUT_LIMIT]
    assert len(cut) == 3, "every node's answer must exceed what the API returns"
    assert err.count("the API's copy of its answer was cut; read it whole from the bucket") == 3
    # Each region's nodes published to their own region's bucket only.
    for region in NODES:
        bucket = f"bacalhau-logs-dev-{region}-archive"
        listed = client.list_objects_v2(Bucket=bucket, Prefix="ops-results/")
        stdouts = [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith("/stdout")]
        assert len(stdouts) == len(NODES[region])


def test_without_the_published_copy_the_node_is_a_gap_and_the_rest_prints(
    whole_cli: Cli, nodes, s3_endpoint
):
    node_list, _ = nodes
    client = make_client(s3_endpoint, "us-east-1")

    def refuse(_endpoint: Any, _region: Any, _keys: Any) -> Any:
        raise PermissionError("AccessDenied")

    whole_cli.runtime.s3_client = refuse
    with ComputeNodes(whole_cli.orchestrator, node_list, client):
        code, out, err = whole_cli.run(
            "query", "security-analysis", "--threshold", "3", "--region", "us-1"
        )
    assert code == 3
    assert out.splitlines()[-1] == "(0 rows)"
    assert "reading the published copy failed: AccessDenied" in err
    assert "partial result: 0 of 1 nodes answered in full" in err
