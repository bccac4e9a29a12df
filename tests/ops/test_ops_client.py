"""Waiting for a job against the stand-in (spec-checked), and reporting each poll."""

from __future__ import annotations

from infra.bacalhau.client import BacalhauClient
from infra.ops.wait import JobTimeout, Polling, wait_for_job
from tests.support.fake_orchestrator import FakeOrchestrator

JOB = {
    "Name": "dev-ops-x",
    "Type": "ops",
    "Tasks": [{"Name": "q", "Engine": {"Type": "docker", "Params": {"Image": "a"}}}],
}


def test_wait_backs_off_between_polls_and_stops_at_the_deadline(orchestrator: FakeOrchestrator):
    client = BacalhauClient(orchestrator.url, retry_budget=1.0)
    job_id = client.put_job(JOB, None, force=False)
    orchestrator.add_execution(job_id, "n-1", delay=60)
    now = [0.0]
    sleeps: list[float] = []
    polls: list[tuple[str, int, float]] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    def report(state: str, executions: list[dict[str, object]], elapsed: float) -> None:
        polls.append((state, len(executions), elapsed))

    try:
        wait_for_job(client, job_id, 10.0, report, Polling(1.0, 2.0, 4.0), lambda: now[0], sleep)
    except JobTimeout as timeout:
        assert timeout.job_id == job_id
    else:
        raise AssertionError("expected a timeout")
    assert sleeps == [1.0, 2.0, 4.0]
    assert polls == [
        ("Running", 1, 0.0),
        ("Running", 1, 1.0),
        ("Running", 1, 3.0),
        ("Running", 1, 7.0),
    ]
    # Executions are asked for the job's current version only.
    assert orchestrator.requests[-1].query == {"order_by": ["create_time"], "job_version": ["1"]}
