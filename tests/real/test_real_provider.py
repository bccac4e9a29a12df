"""The BacalhauJob provider's whole lifecycle against the real v1.9.3 orchestrator, every input
delivered the way the Pulumi engine delivers it (a protobuf Struct: every number a double)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.bacalhau.provider import BacalhauJobProvider
from tests.bacalhau.conftest import as_engine_sends
from tests.real.cluster import Cluster


def _daemon(name: str, **changes: Any) -> dict[str, Any]:
    """A daemon job for the eu-1 nodes. Without Docker it stays Pending, never Failed, so it
    can be updated like the stack's Logstash job."""
    job: dict[str, Any] = {
        "Name": name,
        "Type": "daemon",
        "Priority": 0,
        "Labels": {"app": "bacalhau-logs", "component": "lifecycle-test"},
        "Constraints": [{"Key": "region", "Operator": "=", "Values": ["eu-1"]}],
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "docker", "Params": {"Image": "busybox:1.36"}},
                "Env": {"MODE": "test"},
                "Resources": {"CPU": "250m", "Memory": "256MB"},
                "Timeouts": {"ExecutionTimeout": 0},
            }
        ],
    }
    job.update(changes)
    return job


@pytest.fixture
def provider(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> BacalhauJobProvider:
    # The test cluster's self-signed certificate, trusted the way a system CA would be.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cluster.cert))
    monkeypatch.setenv("BACALHAU_API_KEY", cluster.api_key)
    return BacalhauJobProvider(retry_budget=10)


def _props(cluster: Cluster, spec: dict[str, Any]) -> dict[str, Any]:
    return as_engine_sends({"endpoint": cluster.api_url, "spec": spec, "namespace": None})


def test_lifecycle(cluster: Cluster, provider: BacalhauJobProvider) -> None:
    """create, diff, no-op update, update, replace, read after an out-of-band stop, read of a
    job the orchestrator no longer knows, delete (twice). Each answer is the real one:
    "no changes detected" is a 500 (pkg/orchestrator/endpoint.go), a stopped job keeps its ID,
    an unknown ID is a 404 (pkg/publicapi/endpoint/orchestrator/job.go)."""
    client = cluster.client()
    spec = _daemon("lifecycle-logstash")

    checked = provider.check({}, _props(cluster, spec))
    assert checked.failures == []
    created = provider.create(dict(checked.inputs or {}))
    live = client.get_job(created.id)
    assert live is not None and live["Version"] == 1 and live["Type"] == "daemon"
    assert created.outs["version"] == 1

    olds = as_engine_sends(created.outs)
    assert provider.diff(created.id, olds, _props(cluster, spec)).changes is False

    # The engine calls update with the same spec when only an output-free input changes: the
    # orchestrator's "no changes detected" (HTTP 500) must not fail it or add a version.
    same = provider.update(created.id, olds, _props(cluster, spec))
    assert same.outs["version"] == 1

    changed = _daemon("lifecycle-logstash", Priority=5)
    assert provider.diff(created.id, olds, _props(cluster, changed)).changes is True
    updated = provider.update(created.id, olds, _props(cluster, changed))
    assert updated.outs["version"] == 2
    live = client.get_job(created.id)
    assert live is not None and live["Priority"] == 5

    # The Type is not copied by an update (pkg/jobstore/boltdb/store.go): a replacement.
    olds = as_engine_sends(updated.outs)
    as_service = _daemon("lifecycle-logstash", Type="service", Count=1)
    assert "spec" in (provider.diff(created.id, olds, _props(cluster, as_service)).replaces or [])

    renamed = _daemon("lifecycle-logstash-v2", Priority=5)
    diff = provider.diff(created.id, olds, _props(cluster, renamed))
    assert diff.replaces and diff.delete_before_replace is False
    replacement = provider.create(_props(cluster, renamed))
    provider.delete(created.id, olds)
    old_live = client.get_job(created.id)
    assert old_live is not None and old_live["State"]["StateType"] == "Stopped"

    client.stop_job(replacement.id, reason="stopped out of band")
    read = provider.read(replacement.id, as_engine_sends(replacement.outs))
    assert read.id == replacement.id
    assert read.outs["state"] == "Stopped"
    assert read.outs["spec"] == renamed

    gone = provider.read("j-00000000-0000-0000-0000-000000000000", _props(cluster, renamed))
    assert gone.id == ""

    provider.delete(replacement.id, as_engine_sends(read.outs))
    provider.delete(replacement.id, as_engine_sends(read.outs))


def test_refresh_reports_no_drift_for_what_the_server_rewrites(
    cluster: Cluster, provider: BacalhauJobProvider
) -> None:
    """The orchestrator omits an empty Env (the AWS stack's jobs have none left after env
    references are dropped) and keeps Resources as given; a refresh right after create must
    return the declared spec unchanged."""
    spec = _daemon("refresh-no-drift")
    spec["Tasks"][0]["Env"] = {}
    created = provider.create(_props(cluster, spec))
    try:
        read = provider.read(created.id, as_engine_sends(created.outs))
        assert (
            provider.diff(created.id, as_engine_sends(read.outs), _props(cluster, spec)).changes
            is False
        )
    finally:
        provider.delete(created.id, as_engine_sends(created.outs))
