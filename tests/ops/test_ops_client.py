"""The API client's listing calls the CLI adds, against the stand-in (spec-checked)."""

from __future__ import annotations

import io

from infra.bacalhau.client import BacalhauClient
from infra.ops.wait import JobTimeout, Polling, wait_for_job
from tests.support.fake_orchestrator import FakeOrchestrator

JOB = {
    "Name": "dev-ops-x",
    "Type": "ops",
    "Tasks": [{"Name": "q", "Engine": {"Type": "docker", "Params": {"Image": "a"}}}],
}


def test_list_executions_and_nodes(orchestrator: FakeOrchestrator):
    client = BacalhauClient(orchestrator.url, retry_budget=1.0)
    job_id = client.put_job(JOB, None, force=False)
    orchestrator.add_execution(job_id, "n-1", stdout="[]")
    orchestrator.add_execution(job_id, "n-2", state="Failed")
    executions = client.list_executions(job_id)
    assert [(e["NodeID"], e["ComputeState"]["StateType"]) for e in executions] == [
        ("n-1", "Completed"),
        ("n-2", "Failed"),
    ]
    assert orchestrator.requests[-1].query == {"order_by": ["create_time"]}
    assert {n["Info"]["NodeID"] for n in client.list_nodes()} >= {"bacalhau-logs-dev-us-1-node-1"}


def test_wait_backs_off_between_polls_and_stops_at_the_deadline(orchestrator: FakeOrchestrator):
    client = BacalhauClient(orchestrator.url, retry_budget=1.0)
    job_id = client.put_job(JOB, None, force=False)
    orchestrator.add_execution(job_id, "n-1", delay=60)
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    progress = io.StringIO()
    try:
        wait_for_job(client, job_id, 10.0, progress, Polling(1.0, 2.0, 4.0), lambda: now[0], sleep)
    except JobTimeout as timeout:
        assert timeout.job_id == job_id
    else:
        raise AssertionError("expected a timeout")
    assert sleeps == [1.0, 2.0, 4.0]
    # Progress is written when it changes, not on every poll.
    assert progress.getvalue().count("\n") == 1
    assert "Running; executions: 1 running" in progress.getvalue()
