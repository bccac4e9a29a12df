"""Fixtures for the operator CLI: a stand-in orchestrator, stack outputs, a fast runtime, and the
agent's partial documents as nodes print them."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from agent.named import NAMED_QUERIES, PARTIAL_FORMAT, Named
from infra.ops.cli import Runtime, main
from infra.ops.wait import Polling
from tests.support.fake_orchestrator import FakeOrchestrator
from tests.support.swagger import SwaggerSpec

SWAGGER = Path(__file__).resolve().parents[1] / "reference" / "bacalhau" / "swagger-v1.9.3.json"
AGENT_IMAGE = "registry:5000/agent@sha256:" + "a" * 64
NODES = {
    "eu-1": ["bacalhau-logs-dev-eu-1-node-1", "bacalhau-logs-dev-eu-1-node-2"],
    "us-1": ["bacalhau-logs-dev-us-1-node-1"],
}


def stack_outputs(api_url: str, **changes: Any) -> dict[str, Any]:
    outputs: dict[str, Any] = {
        "backend": "docker",
        "orchestratorApiUrl": api_url,
        "s3Endpoint": "http://127.0.0.1:9000",
        "buckets": {region: f"bacalhau-logs-dev-{region}-archive" for region in NODES},
        "images": {"agent": AGENT_IMAGE, "logstash": "registry:5000/logstash@sha256:" + "b" * 64},
        "nodes": NODES,
        "jobs": {},
    }
    outputs.update(changes)
    return {key: value for key, value in outputs.items() if value is not None}


@dataclass
class Cli:
    """Runs `python -m infra.ops` in process against the stand-in."""

    orchestrator: FakeOrchestrator
    outputs_path: Path
    runtime: Runtime

    def write_outputs(self, **changes: Any) -> None:
        self.outputs_path.write_text(json.dumps(stack_outputs(self.orchestrator.url, **changes)))

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.runtime.stdout = io.StringIO()
        self.runtime.stderr = io.StringIO()
        # A job the stand-in never settles must fail the test quickly, not after 600 s.
        bounded = [] if "--timeout" in argv else ["--timeout", "20"]
        code = main([*argv, "--outputs", str(self.outputs_path), *bounded], self.runtime)
        return code, self.runtime.stdout.getvalue(), self.runtime.stderr.getvalue()

    def on_submit(self, react: Callable[[dict[str, Any]], None]) -> None:
        self.orchestrator.on_submit.append(react)

    @property
    def submitted(self) -> list[dict[str, Any]]:
        return [r.body["Job"] for r in self.orchestrator.requests if r.method == "PUT"]


@pytest.fixture
def orchestrator() -> Iterator[FakeOrchestrator]:
    """Every request must conform to the v1.9.3 API spec when it is present."""
    swagger = SwaggerSpec(SWAGGER)
    with FakeOrchestrator(swagger=swagger, settle_jobs=True) as fake:
        for region, names in NODES.items():
            for name in names:
                fake.add_node(name, {"region": region, "host": name})
        yield fake
    assert fake.spec_violations == []


@pytest.fixture
def cli(orchestrator: FakeOrchestrator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("BACALHAU_API_KEY", raising=False)
    runtime = Runtime(environ={}, polling=Polling(first=0.02, factor=1.5, longest=0.1))
    harness = Cli(orchestrator, tmp_path / "outputs.json", runtime)
    harness.write_outputs()
    return harness


def partial(
    rows: list[list[Any]],
    columns: tuple[str, ...] = ("request", "requests"),
    named: Named | None = Named.ERROR_ANALYSIS,
    diagnostics: tuple[str, ...] = (),
    malformed: int | None = 0,
    inputs: dict[str, int] | None = None,
    merge: bool = True,
    reason: str | None = None,
) -> str:
    """A node's stdout as `agent query --partial` prints it (agent/partial.py)."""
    rule = NAMED_QUERIES[named].rule(10, 1000).to_json() if named is not None else None
    document = {
        "format": PARTIAL_FORMAT,
        "columns": list(columns),
        "rows": rows,
        "rule": rule,
        "merge": merge and rule is not None,
        "reason": reason,
        "inputs": inputs or {"files": 1, "bytes": 100, "compacted": 0, "raw": 0, "plain": 1},
        "diagnostics": list(diagnostics),
        "malformed_lines": malformed,
    }
    return json.dumps(document) + "\n"


@pytest.fixture
def make_registered_job(orchestrator: FakeOrchestrator) -> Callable[[str], str]:
    """Register a daemon job as the stack would; answers its ID."""

    def register(name: str) -> str:
        job = {
            "Name": name,
            "Type": "daemon",
            "Tasks": [{"Name": "main", "Engine": {"Type": "docker", "Params": {"Image": "x"}}}],
        }
        answer = requests.put(f"{orchestrator.url}/api/v1/orchestrator/jobs", json={"Job": job})
        job_id: str = answer.json()["JobID"]
        orchestrator.requests.clear()
        return job_id

    return register
