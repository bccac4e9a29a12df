"""`python -m infra.ops` against the real v1.9.3 cluster: status, and the submission path of
query and archive. No Docker runs here, so no answer comes back; what is checked is that the
rendered specs are accepted, that their constraints select the scope's nodes, and that the
scheduler's own reason reaches the operator with exit 3 (partial result)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from infra.ops.cli import Runtime, main
from infra.ops.present import EXIT_OK, EXIT_PARTIAL
from tests.real.cluster import Cluster

AGENT_IMAGE = "registry:5000/bacalhau-logs/agent@sha256:" + "a" * 64


@pytest.fixture(scope="module")
def outputs_file(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack outputs a dev stack would export for this cluster (the API key included, as
    the Automation API returns it)."""
    regions = sorted({node.labels["region"] for node in cluster.compute})
    outputs = {
        "backend": "docker",
        "orchestratorApiUrl": cluster.api_url,
        "orchestratorApiKey": cluster.api_key,
        "buckets": {region: f"bacalhau-logs-test-{region}-archive" for region in regions},
        "s3Endpoint": "http://127.0.0.1:9",
        "images": {"agent": AGENT_IMAGE, "logstash": AGENT_IMAGE},
        "nodes": {
            region: [n.name for n in cluster.compute if n.labels["region"] == region]
            for region in regions
        },
    }
    path = tmp_path_factory.mktemp("ops") / "outputs.json"
    path.write_text(json.dumps(outputs))
    return path


def _run(
    outputs_file: Path, *argv: str, monkeypatch: pytest.MonkeyPatch, cert: Path
) -> tuple[int, str, str]:
    # The cluster's self-signed certificate, trusted as a system CA would be; no API key in the
    # environment, so the one in the outputs is what authenticates.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    stdout, stderr = io.StringIO(), io.StringIO()
    runtime = Runtime(stdout=stdout, stderr=stderr, environ={})
    code = main(["--outputs", str(outputs_file), *argv], runtime)
    return code, stdout.getvalue(), stderr.getvalue()


def test_status_lists_every_node_with_its_region(
    cluster: Cluster, outputs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = _run(outputs_file, "status", monkeypatch=monkeypatch, cert=cluster.cert)
    assert code == EXIT_OK
    for node in cluster.compute:
        line = next(line for line in out.splitlines() if node.name in line)
        assert node.labels["region"] in line and "CONNECTED" in line


def _scheduler_reasons(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if "FAILED" in line)


@pytest.mark.parametrize("command", ["query", "archive"])
def test_submissions_reach_exactly_the_regions_nodes_and_report_why(
    cluster: Cluster, outputs_file: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """The spec is accepted (a refused one would exit 1), every node outside the region is
    excluded by its label selector, the region's own nodes get as far as the engine check,
    and that reason, the scheduler's, is printed with exit 3."""
    region = "us-1"
    argv: list[Any] = (
        ["query", "error-analysis", "--since", "1h"]
        if command == "query"
        else ["archive", "top-referring-sites", "--date", "2025-01-15"]
    )
    code, _, err = _run(
        outputs_file,
        *argv,
        "--region",
        region,
        "--timeout",
        "60",
        monkeypatch=monkeypatch,
        cert=cluster.cert,
    )
    assert code == EXIT_PARTIAL, err
    assert "submitted" in err
    reasons = _scheduler_reasons(err)
    for node in cluster.compute:
        if node.labels["region"] == region:
            assert f"Node {node.name}: labels" not in reasons, reasons
        else:
            assert f"Node {node.name}: labels" in reasons, reasons
            assert f"region in {region}" in reasons or f"region = {region}" in reasons
    assert "does not support docker" in reasons, reasons
