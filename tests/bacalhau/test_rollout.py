"""Waiting for a rollout (issue 10, item 16).

A v1.9.3 PUT returns once the job is stored, before anything runs (BaseEndpoint.SubmitJob,
pkg/orchestrator/endpoint.go), and a daemon job's update cancels every execution of the old version
and creates new ones (DaemonJobScheduler, pkg/orchestrator/scheduler/daemon_job.go). The
orchestrator never hears that an execution runs: compute nodes send only bid answers, completions
and failures (NCLMessageCreator, pkg/compute/watchers/ncl_message_creator.go). Observed on a real
v1.9.3 orchestrator with one compute node: a daemon execution running for minutes stayed New (1)
with desired state Running (1); a service one went to BidAccepted (5) "Running"; a failing one
ended Failed (10) with the node's reason in ComputeState.Message, and was then retried.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from infra.bacalhau.client import BacalhauClient
from infra.bacalhau.provider import RolloutFailed, RolloutTimeout, rollout_progress
from tests.bacalhau.conftest import JobFactory
from tests.support.fake_orchestrator import EXECUTION_STATES, FakeOrchestrator

NODES = ("n-eu-1", "n-eu-2")


def _props(orchestrator: FakeOrchestrator, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"endpoint": orchestrator.url, "spec": spec, "namespace": None, **extra}


def _schedule(orchestrator: FakeOrchestrator, **execution: Any) -> None:
    """Each accepted version gets one execution per node, like the daemon scheduler."""

    def react(job: dict[str, Any]) -> None:
        for node in NODES:
            orchestrator.add_execution(job["ID"], node, **execution)

    orchestrator.on_submit.append(react)


def _execution(
    node: str, state: str, version: int = 2, message: str = "", desired: int = 1
) -> dict[str, Any]:
    compute: dict[str, Any] = {"StateType": EXECUTION_STATES.index(state)}
    if message:
        compute["Message"] = message
    return {
        "ID": f"e-{node}",
        "NodeID": node,
        "JobVersion": version,
        "DesiredState": {"StateType": desired},
        "ComputeState": compute,
    }


def _job(state: str = "Running", version: int = 2, message: str = "") -> dict[str, Any]:
    return {
        "ID": "j-1",
        "Name": "dev-eu-1-logstash",
        "Version": version,
        "State": {"StateType": state, "Message": message},
    }


def test_a_daemon_update_returns_once_its_executions_held_for_the_settle_time(
    provider, orchestrator, make_job
):
    _schedule(orchestrator, state="New", delay=0)
    created = provider.create(_props(orchestrator, make_job()))
    news = _props(orchestrator, make_job(Labels={"v": "2"}), rollout_timeout=5, rollout_settle=0.3)
    started = time.monotonic()
    updated = provider.update(created.id, created.outs, news).outs
    assert 0.3 <= time.monotonic() - started < 3
    assert updated["version"] == 2 and updated["rollout_settle"] == 0.3
    current = BacalhauClient(orchestrator.url).list_executions(created.id)
    assert [(e["JobVersion"], e["ComputeState"]["StateType"]) for e in current] == [(2, 1)] * 2


def test_the_settle_time_starts_when_every_bid_is_accepted(provider, orchestrator, make_job):
    _schedule(orchestrator, state="BidAccepted", pending_state="AskForBid", delay=0.3)
    started = time.monotonic()
    service = make_job(Type="service", Count=2)
    provider.create(_props(orchestrator, service, rollout_timeout=5, rollout_settle=0.2))
    assert 0.5 <= time.monotonic() - started < 3


def test_the_settle_time_starts_when_the_job_runs(provider, orchestrator, make_job):
    """Right after a PUT the job is Pending ("Job update requested by user") until the
    scheduler evaluates it; its executions may already be listed."""

    def pending_for_a_while(job: dict[str, Any]) -> None:
        job["State"] = {"StateType": "Pending"}
        threading.Timer(0.3, job.update, kwargs={"State": {"StateType": "Running"}}).start()

    orchestrator.on_submit.append(pending_for_a_while)
    _schedule(orchestrator, state="New")
    started = time.monotonic()
    provider.create(_props(orchestrator, make_job(), rollout_timeout=5, rollout_settle=0.2))
    assert 0.5 <= time.monotonic() - started < 3


def test_a_failed_execution_stops_the_rollout_naming_job_version_and_node(
    provider, orchestrator, make_job
):
    created = provider.create(_props(orchestrator, make_job()))
    orchestrator.add_execution(created.id, NODES[0], state="New")
    _schedule(orchestrator, state="Failed", error="image pull failed: manifest unknown")
    news = _props(orchestrator, make_job(Labels={"v": "2"}), rollout_timeout=30, rollout_settle=9)
    started = time.monotonic()
    with pytest.raises(RolloutFailed) as raised:
        provider.update(created.id, created.outs, news)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert f"job 'dev-eu-1-logstash' ({created.id}) version 2 failed to roll out" in message
    assert "node n-eu-1: Failed: image pull failed: manifest unknown" in message
    assert "node n-eu-2: Failed: image pull failed: manifest unknown" in message


def test_a_failure_within_the_settle_time_stops_the_rollout(provider, orchestrator, make_job):
    _schedule(orchestrator, state="Failed", pending_state="New", delay=0.3, error="exit code 1")
    with pytest.raises(RolloutFailed, match="node n-eu-1: Failed: exit code 1"):
        provider.create(_props(orchestrator, make_job(), rollout_timeout=30, rollout_settle=5))


def test_a_rollout_that_never_settles_times_out_with_what_is_placed_where(
    provider, orchestrator, make_job
):
    _schedule(orchestrator, state="BidAccepted", pending_state="AskForBid", delay=60)
    started = time.monotonic()
    with pytest.raises(RolloutTimeout) as raised:
        provider.create(_props(orchestrator, make_job(), rollout_timeout=0.3, rollout_settle=0.1))
    assert 0.3 <= time.monotonic() - started < 3
    assert "version 1 did not settle on its nodes within 0.3s" in str(raised.value)
    assert "0 of 2 executions placed: n-eu-1 AskForBid, n-eu-2 AskForBid" in str(raised.value)


def test_without_a_timeout_or_for_batch_jobs_nothing_waits(provider, orchestrator, make_job):
    _schedule(orchestrator, state="Running", pending_state="AskForBid", delay=60)
    started = time.monotonic()
    provider.create(_props(orchestrator, make_job()))
    batch = make_job(name="dev-eu-1-once", Type="batch")
    provider.create(_props(orchestrator, batch, rollout_timeout=30))
    assert time.monotonic() - started < 1


def test_an_unchanged_update_still_waits_for_the_current_version(provider, orchestrator, make_job):
    """A rerun of `pulumi up` after a failed wait finds the spec already stored ("no changes
    detected"): it must look at that version again, not report success."""
    created = provider.create(_props(orchestrator, make_job()))
    orchestrator.add_execution(created.id, NODES[0], state="Failed", error="exit code 1")
    news = _props(orchestrator, make_job(), rollout_timeout=30, rollout_settle=9)
    with pytest.raises(RolloutFailed, match="version 1 failed to roll out: node n-eu-1"):
        provider.update(created.id, created.outs, news)


@pytest.mark.parametrize(
    ("job", "executions", "placed", "failure"),
    [
        (_job(), [_execution("a", "New"), _execution("b", "BidAccepted")], True, ""),
        (_job(), [_execution("a", "Running"), _execution("b", "Completed")], True, ""),
        (_job(), [_execution("a", "New", desired=0)], False, ""),
        (_job(), [_execution("a", "New"), _execution("b", "AskForBid")], False, ""),
        (_job("Pending"), [_execution("a", "New")], False, ""),
        (_job(), [], False, ""),
        (_job(), [_execution("a", "New"), _execution("b", "Cancelled")], True, ""),
        (
            _job(),
            [_execution("a", "New"), _execution("b", "AskForBidRejected", message="no room")],
            False,
            "node b: AskForBidRejected: no room",
        ),
        (_job(version=3), [], False, "the job was updated to version 3 meanwhile"),
        (
            _job("Failed", message="not matching nodes"),
            [],
            False,
            "the job is Failed: not matching nodes",
        ),
    ],
)
def test_rollout_progress(job, executions, placed, failure):
    progress = rollout_progress(job, 2, executions)
    assert (progress.placed, progress.failure) == (placed, failure)


def test_state_names_are_accepted_as_well_as_numbers():
    named = {"NodeID": "a", "JobVersion": 2, "ComputeState": {"StateType": "Running"}}
    assert rollout_progress(_job(), 2, [named]).placed is True


def test_check_refuses_a_timeout_that_is_not_a_positive_number(
    provider, orchestrator, make_job: JobFactory
):
    for key in ("rollout_timeout", "rollout_settle"):
        for bad in (0, -5, "10m", True):
            news = _props(orchestrator, make_job(), **{key: bad})
            (failure,) = provider.check({}, news).failures
            assert failure.property == key
            assert "is not a number of seconds above 0" in failure.reason


def test_check_refuses_a_timeout_the_settle_time_cannot_fit_in(
    provider, orchestrator, make_job: JobFactory
):
    for settle in ({"rollout_settle": 30}, {}):
        news = _props(orchestrator, make_job(), rollout_timeout=30, **settle)
        (failure,) = provider.check({}, news).failures
        assert failure.property == "rollout_timeout"
        assert "30 must be longer than rollout_settle" in failure.reason
    fits = _props(orchestrator, make_job(), rollout_timeout=61)
    assert provider.check({}, fits).failures == []
