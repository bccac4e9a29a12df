"""Fixtures for the Bacalhau job tests: the API spec and a running stand-in orchestrator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import rpc

from infra.bacalhau.provider import BacalhauJobProvider
from tests.support.fake_orchestrator import FakeOrchestrator
from tests.support.swagger import SwaggerSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
JOBS_DIR = REPO_ROOT / "jobs"
SAMPLE_VALUES = {
    "region": "eu-1",
    "env": "dev",
    "bucket": "bacalhau-logs-dev-eu-1-archive",
    "archive_prefix": "logs/",
    "s3_endpoint": "http://storage:9000",
    "s3_region": "us-east-1",
    "opensearch_url": "http://opensearch:9200",
    "opensearch_auth": "",
    "opensearch_region": "",
    "agent_image": "registry:5000/agent@sha256:" + "a" * 64,
    "logstash_image": "registry:5000/logstash@sha256:" + "b" * 64,
    "aggregate_duration": 60,
    "log_rate": 20.0,
    "date": "2025-01",
    "since": "2025-01-10T00:00:00",
    "until": "2025-01-20T00:00:00",
}


@pytest.fixture(scope="session")
def swagger_path() -> Path:
    return REPO_ROOT / "tests" / "reference" / "bacalhau" / "swagger-v1.9.3.json"


@pytest.fixture(scope="session")
def swagger(swagger_path: Path) -> SwaggerSpec:
    """The release's API spec, kept in the repository (tests/reference/bacalhau/README.md)."""
    return SwaggerSpec(swagger_path)


@pytest.fixture
def orchestrator(swagger: SwaggerSpec) -> Iterator[FakeOrchestrator]:
    """A stand-in orchestrator; every request it receives must conform to the API spec."""
    with FakeOrchestrator(swagger=swagger) as fake:
        yield fake
    assert fake.spec_violations == []


@pytest.fixture
def provider() -> BacalhauJobProvider:
    return BacalhauJobProvider(retry_budget=2.0, poll_interval=0.02)


@pytest.fixture(autouse=True)
def _no_ambient_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACALHAU_API_KEY", raising=False)


JobFactory = Callable[..., dict[str, Any]]


def as_engine_sends(props: dict[str, Any]) -> dict[str, Any]:
    """``props`` as a dynamic provider receives them from the Pulumi engine: a protobuf Struct
    (where every number is a double) read back with ``rpc.deserialize_properties``, as
    pulumi/dynamic/__main__.py's servicer does for Check, Diff, Create, Update, Read and Delete."""
    struct = struct_pb2.Struct()
    struct.update(props)
    received: dict[str, Any] = rpc.deserialize_properties(struct)
    return received


@pytest.fixture
def sample_values() -> dict[str, object]:
    return dict(SAMPLE_VALUES)


@pytest.fixture
def make_job() -> JobFactory:
    """A minimal valid daemon job; keyword arguments replace top-level fields."""
    return _daemon_job


def service_job(name: str = "dev-eu-1-compactor", **changes: Any) -> dict[str, Any]:
    """A minimal valid service job with Count 1, like jobs/compactor.yaml."""
    job = _daemon_job(name, Type="service", Count=1)
    job.update(changes)
    return job


def _daemon_job(name: str = "dev-eu-1-logstash", **changes: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "Name": name,
        "Type": "daemon",
        "Constraints": [{"Key": "region", "Operator": "=", "Values": ["eu-1"]}],
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "docker", "Params": {"Image": "logstash:1"}},
                "Network": {"Type": "Host"},
                "Resources": {"CPU": "1", "Memory": "1GB"},
            }
        ],
    }
    job.update(changes)
    return job
