"""The dynamic provider's methods against the stand-in orchestrator."""

from __future__ import annotations

import base64
import socket
import time
from typing import Any

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from infra.bacalhau.client import (
    BacalhauAPIError,
    BacalhauClient,
    JobUnchanged,
    OrchestratorUnreachable,
)
from infra.bacalhau.provider import BacalhauJobProvider
from tests.bacalhau.conftest import JobFactory
from tests.support.fake_orchestrator import FakeOrchestrator

SECRET = "s3cr3t-api-key-value"


def _props(orchestrator: FakeOrchestrator, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"endpoint": orchestrator.url, "spec": spec, "namespace": None, **extra}


def _created(provider, orchestrator, spec):
    result = provider.create(_props(orchestrator, spec))
    return result.id, result.outs


def test_create_submits_the_job_and_reports_id_version_state(provider, orchestrator, make_job):
    job_id, outs = _created(provider, orchestrator, make_job())
    assert orchestrator.jobs[job_id]["Name"] == "dev-eu-1-logstash"
    assert outs["job_id"] == job_id
    assert outs["version"] == 1
    assert outs["state"] == "Running"
    assert outs["spec"] == make_job()
    put = orchestrator.writes[0]
    assert put.method == "PUT" and put.body["Force"] is True


def test_unchanged_spec_makes_no_api_call(provider, orchestrator, make_job: JobFactory):
    _, outs = _created(provider, orchestrator, make_job())
    before = len(orchestrator.requests)
    reordered = dict(reversed(list(make_job().items())))
    reordered["Tasks"][0]["Resources"]["Memory"] = "1Gb"
    result = provider.diff(outs["job_id"], outs, _props(orchestrator, reordered))
    assert result.changes is False
    assert len(orchestrator.requests) == before


def test_changed_spec_updates_in_place_with_one_put(provider, orchestrator, make_job):
    job_id, outs = _created(provider, orchestrator, make_job())
    news = _props(orchestrator, make_job(Labels={"tier": "edge"}))
    diff = provider.diff(job_id, outs, news)
    assert diff.changes is True and diff.replaces == []
    writes_before = len(orchestrator.writes)
    updated = provider.update(job_id, outs, news).outs
    assert len(orchestrator.writes) == writes_before + 1
    assert orchestrator.writes[-1].body["Force"] is False
    assert updated["job_id"] == job_id
    assert updated["version"] == 2
    assert orchestrator.jobs[job_id]["Labels"] == {"tier": "edge"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("spec", None), ("namespace", "team-b"), ("endpoint", "http://other:1234")],
)
def test_name_namespace_or_endpoint_change_replaces(provider, orchestrator, make_job, field, value):
    job_id, outs = _created(provider, orchestrator, make_job())
    news = _props(orchestrator, make_job())
    news[field] = make_job(name="dev-eu-1-shipper") if field == "spec" else value
    diff = provider.diff(job_id, outs, news)
    assert diff.changes is True
    assert diff.replaces == [field]


def test_unchanged_namespace_none_and_trailing_slash_are_no_change(
    provider, orchestrator, make_job
):
    job_id, outs = _created(provider, orchestrator, make_job())
    news = _props(orchestrator, make_job(), namespace="")
    news["endpoint"] = orchestrator.url + "/"
    assert provider.diff(job_id, outs, news).changes is False


def test_create_after_destroy_resubmits_a_stopped_job_of_the_same_name(
    provider, orchestrator, make_job
):
    job_id, outs = _created(provider, orchestrator, make_job())
    provider.delete(job_id, outs)
    assert orchestrator.jobs[job_id]["State"]["StateType"] == "Stopped"
    again_id, again = _created(provider, orchestrator, make_job())
    assert again_id == job_id
    assert again["state"] == "Running"
    assert again["version"] == 2


def test_refresh_of_a_removed_job_reports_it_gone(provider, orchestrator, make_job):
    job_id, outs = _created(provider, orchestrator, make_job())
    orchestrator.forget_job(job_id)
    result = provider.read(job_id, outs)
    assert result.id == ""


@pytest.mark.parametrize("state", ["Stopped", "Failed"])
def test_refresh_of_an_ended_job_keeps_it_with_its_state(provider, orchestrator, make_job, state):
    job_id, outs = _created(provider, orchestrator, make_job())
    orchestrator.set_job_state(job_id, state)
    result = provider.read(job_id, outs)
    assert result.id == job_id
    assert result.outs["state"] == state
    assert result.outs["spec"] == outs["spec"]
    news = _props(orchestrator, make_job())
    assert provider.diff(job_id, result.outs, news).changes is False


def test_refresh_shows_drift_in_declared_fields_only(provider, orchestrator, make_job):
    job_id, outs = _created(provider, orchestrator, make_job())
    live = orchestrator.jobs[job_id]
    live.update(Priority=50, Meta={"bacalhau.org/requester.id": "n-0"})
    assert provider.read(job_id, outs).outs["spec"] == outs["spec"]
    live["Tasks"][0]["Engine"]["Params"]["Image"] = "logstash:tampered"
    drifted = provider.read(job_id, outs).outs
    assert drifted["spec"]["Tasks"][0]["Engine"]["Params"]["Image"] == "logstash:tampered"
    assert provider.diff(job_id, drifted, _props(orchestrator, make_job())).changes is True


def test_delete_stops_and_is_idempotent(provider, orchestrator, make_job):
    job_id, outs = _created(provider, orchestrator, make_job())
    provider.delete(job_id, outs)
    assert orchestrator.jobs[job_id]["State"]["StateType"] == "Stopped"
    deletes = [r for r in orchestrator.writes if r.method == "DELETE"]
    provider.delete(job_id, outs)
    orchestrator.forget_job(job_id)
    provider.delete(job_id, outs)
    assert [r for r in orchestrator.writes if r.method == "DELETE"] == deletes


def test_check_reports_each_problem_before_any_api_call(provider, orchestrator, make_job):
    news = _props(orchestrator, make_job(Type="cron", Count=2))
    news["endpoint"] = "orchestrator:1234"
    failures = provider.check({}, news).failures
    reasons = sorted((f.property, f.reason) for f in failures)
    assert reasons == [
        ("endpoint", "'orchestrator:1234' is not an http(s) URL"),
        ("spec", "job 'dev-eu-1-logstash': Type: 'cron' is not one of batch, service, daemon, ops"),
    ]
    assert orchestrator.requests == []


def test_check_accepts_a_good_job_and_skips_unknowns(provider, orchestrator, make_job):
    assert provider.check({}, _props(orchestrator, make_job())).failures == []
    from infra.bacalhau.spec import UNKNOWN

    assert provider.check({}, {"endpoint": UNKNOWN, "spec": UNKNOWN}).failures == []


def test_server_errors_are_retried(orchestrator, make_job):
    orchestrator.fail_next(503, "warming up", times=2)
    sleeps: list[float] = []
    client = BacalhauClient(orchestrator.url, retry_budget=30, sleep=sleeps.append)
    job_id = client.put_job(make_job(), None, force=False)
    assert job_id in orchestrator.jobs
    assert sleeps == [0.5, 1.0]


def test_persistent_server_errors_give_up_within_the_budget(orchestrator, make_job):
    orchestrator.fail_next(503, "down", times=1000)
    client = BacalhauClient(orchestrator.url, retry_budget=0.6)
    started = time.monotonic()
    with pytest.raises(OrchestratorUnreachable, match="HTTP 503: down"):
        client.put_job(make_job(), None, force=False)
    assert time.monotonic() - started < 2


def test_a_4xx_raises_with_the_orchestrators_message_without_retrying(
    provider, orchestrator, make_job
):
    orchestrator.fail_next(400, "invalid job: task main has no engine")
    with pytest.raises(BacalhauAPIError, match="HTTP 400: invalid job: task main has no engine"):
        provider.create(_props(orchestrator, make_job()))
    assert len(orchestrator.requests) == 1


def test_no_changes_detected_is_raised_at_once_not_retried(orchestrator, make_job):
    """BaseEndpoint.SubmitJob (pkg/orchestrator/endpoint.go at v1.9.3) refuses an unchanged spec
    without Force with bacerrors.Newf("no changes detected ..."), which has no error code, so
    HTTPStatusCode() (pkg/bacerrors/error.go) answers 500. It is not a fault to retry."""
    sleeps: list[float] = []
    client = BacalhauClient(orchestrator.url, retry_budget=60, sleep=sleeps.append)
    job_id = client.put_job(make_job(), None, force=False)
    with pytest.raises(JobUnchanged, match="HTTP 500: no changes detected") as raised:
        client.put_job(make_job(), None, force=False)
    assert job_id in raised.value.message
    assert sleeps == []
    assert len(orchestrator.requests) == 2


def test_a_codeless_500_is_a_refusal_but_a_coded_one_is_retried(orchestrator, make_job):
    """A bacerror without a code is the orchestrator's own answer (e.g. "cannot stop job in state
    Completed", BaseEndpoint.StopJob); "Internal server error" carries Code InternalError
    (middleware.CustomHTTPErrorHandler) and may be transient."""
    client = BacalhauClient(orchestrator.url, retry_budget=30, sleep=lambda _: None)
    job_id = client.put_job(make_job(), None, force=False)
    orchestrator.set_job_state(job_id, "Completed")
    with pytest.raises(BacalhauAPIError, match="HTTP 500: cannot stop job in state Completed"):
        client.stop_job(job_id, reason="test")
    orchestrator.fail_next(500, "Internal server error")
    assert client.get_job(job_id) is not None


def test_update_to_a_spec_the_orchestrator_already_holds_succeeds(provider, orchestrator, make_job):
    """What the orchestrator calls "no changes detected" (here: CPU case, which it lower-cases,
    and an empty Env, which it drops) is success for an update: the live job has the spec."""
    job_id, outs = _created(provider, orchestrator, make_job())
    same_to_bacalhau = make_job()
    same_to_bacalhau["Tasks"][0]["Resources"]["CPU"] = "1"
    same_to_bacalhau["Tasks"][0]["Env"] = {}
    updated = provider.update(job_id, outs, _props(orchestrator, same_to_bacalhau)).outs
    assert updated["version"] == 1
    assert updated["spec"] == same_to_bacalhau
    assert orchestrator.writes[-1].body["Force"] is False


def test_refresh_shows_no_drift_where_the_orchestrator_rewrites_the_job(
    provider, orchestrator, make_job
):
    """v1.9.3 stores what Job.Normalize leaves (pkg/models/job.go, task.go, resource.go): an
    empty task Env is omitted (``omitempty``), units are lower-cased without spaces, a daemon's
    Count becomes 0, the namespace defaults. None of that is drift."""
    declared = make_job(Count=1, Labels={}, Meta={})
    declared["Tasks"][0]["Env"] = {}
    declared["Tasks"][0]["InputSources"] = []
    declared["Tasks"][0]["Resources"] = {"CPU": "500M", "Memory": "1 GB"}
    job_id, outs = _created(provider, orchestrator, declared)
    live_task = orchestrator.jobs[job_id]["Tasks"][0]
    assert "Env" not in live_task and live_task["Resources"] == {"CPU": "500m", "Memory": "1gb"}
    refreshed = provider.read(job_id, outs).outs
    assert refreshed["spec"] == declared
    assert provider.diff(job_id, refreshed, _props(orchestrator, declared)).changes is False


def test_changed_type_under_the_same_name_is_refused_at_check(provider, orchestrator, make_job):
    """BoltJobStore.updateJob (pkg/jobstore/boltdb/store.go at v1.9.3) copies only Priority,
    Count, Constraints, Meta, Labels and Tasks: a new Type is dropped, and since jobs are never
    deleted from the store, not even stop-and-resubmit changes it. Checked on a real v1.9.3."""
    _, outs = _created(provider, orchestrator, make_job())
    news = _props(orchestrator, make_job(Type="service", Count=1))
    failures = provider.check(outs, news).failures
    assert [(f.property, f.reason) for f in failures] == [
        (
            "spec",
            "job 'dev-eu-1-logstash': Type: cannot change from 'daemon' to 'service' under the "
            "same Name; Bacalhau keeps a job Name's Type for good (an update copies only "
            "Priority, Count, Constraints, Meta, Labels and Tasks): give the job a new Name",
        )
    ]


def test_a_field_an_update_does_not_copy_is_a_replacement(provider, orchestrator, make_job):
    """Type with a new Name, or the job's own Namespace: fields outside the six updateJob copies
    must replace the job, never update it in place."""
    job_id, outs = _created(provider, orchestrator, make_job())
    renamed = _props(orchestrator, make_job(name="dev-eu-1-svc", Type="service", Count=1))
    assert provider.check(outs, renamed).failures == []
    assert provider.diff(job_id, outs, renamed).replaces == ["spec"]
    moved = _props(orchestrator, make_job(Namespace="team-b"))
    assert provider.diff(job_id, outs, moved).replaces == ["spec"]
    priority = _props(orchestrator, make_job(Priority=5))
    assert provider.diff(job_id, outs, priority).replaces == []


def test_create_refuses_a_name_held_by_a_job_of_another_type(provider, orchestrator, make_job):
    """After a destroy the stopped job keeps its Name; a forced create of another Type would
    keep the old Type and swap in the new tasks (checked on a real v1.9.3). Refused unwritten."""
    job_id, outs = _created(provider, orchestrator, make_job())
    provider.delete(job_id, outs)
    writes = len(orchestrator.writes)
    with pytest.raises(RuntimeError, match=r"Type: cannot change from 'daemon' to 'service'"):
        provider.create(_props(orchestrator, make_job(Type="service", Count=1)))
    assert len(orchestrator.writes) == writes
    assert orchestrator.jobs[job_id]["Type"] == "daemon"


def test_stop_reason_travels_in_the_body(provider, orchestrator, make_job):
    """orchestrator.stopJob binds apimodels.StopJobRequest, whose Reason has only a
    ``json:"reason"`` tag (pkg/publicapi/apimodels/job.go at v1.9.3): ``?reason=`` is ignored.
    The real client sends the request struct as the DELETE body (client/v2/client.go write)."""
    job_id, outs = _created(provider, orchestrator, make_job())
    provider.delete(job_id, outs)
    (stop,) = [r for r in orchestrator.writes if r.method == "DELETE"]
    assert stop.query == {} and stop.body == {"reason": "deleted by Pulumi"}
    assert orchestrator.jobs[job_id]["State"] == {
        "StateType": "Stopped",
        "Message": "deleted by Pulumi",
    }


def test_namespace_is_sent_as_the_jobs_own_namespace(provider, orchestrator, make_job):
    """orchestrator.putJob hands SubmitJob only Job and Force: the job is filed under
    Job.Namespace and a ``namespace`` beside it in the body is ignored (checked on a real
    v1.9.3). The resource's namespace input therefore goes into the job."""
    result = provider.create(_props(orchestrator, make_job(), namespace="team-b"))
    put = next(r for r in orchestrator.writes if r.method == "PUT")
    assert set(put.body) == {"Job", "Force"}
    assert put.body["Job"]["Namespace"] == "team-b"
    assert orchestrator.jobs[result.id]["Namespace"] == "team-b"
    assert result.outs["namespace"] == "team-b"


def test_conflicting_namespaces_are_refused_at_check(provider, orchestrator, make_job):
    news = _props(orchestrator, make_job(Namespace="team-a"), namespace="team-b")
    (failure,) = provider.check({}, news).failures
    assert failure.property == "namespace"
    assert "'team-b' differs from the job's Namespace 'team-a'" in failure.reason


def test_unreachable_endpoint_fails_clearly_and_quickly(make_job):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = BacalhauJobProvider(retry_budget=1.0)
    started = time.monotonic()
    with pytest.raises(OrchestratorUnreachable, match="cannot reach the orchestrator"):
        provider.create({"endpoint": f"http://127.0.0.1:{port}", "spec": make_job()})
    assert time.monotonic() - started < 3


def test_api_key_from_secret_input_is_sent_as_bearer(make_job, swagger):
    with FakeOrchestrator(swagger=swagger, api_key=SECRET) as orchestrator:
        provider = BacalhauJobProvider(retry_budget=1.0)
        outs = provider.create(_props(orchestrator, make_job(), api_key=SECRET)).outs
        assert orchestrator.requests[0].headers["authorization"] == f"Bearer {SECRET}"
        assert SECRET not in repr(outs)
        assert "api_key" not in outs


def test_api_key_from_environment_serves_refresh_and_delete(make_job, swagger, monkeypatch):
    with FakeOrchestrator(swagger=swagger, api_key=SECRET) as orchestrator:
        provider = BacalhauJobProvider(retry_budget=1.0)
        result = provider.create(_props(orchestrator, make_job(), api_key=SECRET))
        with pytest.raises(BacalhauAPIError, match="HTTP 401"):
            provider.read(result.id, result.outs)
        monkeypatch.setenv("BACALHAU_API_KEY", SECRET)
        assert provider.read(result.id, result.outs).outs["state"] == "Running"
        provider.delete(result.id, result.outs)
        assert orchestrator.jobs[result.id]["State"]["StateType"] == "Stopped"


def test_pickled_provider_holds_no_key():
    from pulumi.dynamic import ConfigureRequest
    from pulumi.dynamic.config import Config

    provider = BacalhauJobProvider()
    config = Config({"bacalhau-logs:orchestratorApiKey": SECRET}, "bacalhau-logs")
    provider.configure(ConfigureRequest(config))
    assert provider._client({"endpoint": "http://x"}).api_key == SECRET
    pickled = base64.b64decode(serialize_provider(provider))
    assert SECRET.encode() not in pickled


def test_executions_are_listed_per_version_in_one_request(orchestrator, make_job):
    """v1.9.3 answers the latest version's executions by default, another version's on
    ``job_version`` (apimodels.BaseVersionedListRequest), and never a NextToken."""
    client = BacalhauClient(orchestrator.url, retry_budget=1.0)
    job_id = client.put_job(make_job(), None, force=False)
    orchestrator.add_execution(job_id, "n-1", state="Running")
    client.put_job(make_job(Priority=2), None, force=False)
    orchestrator.add_execution(job_id, "n-1", state="Running")
    before = len(orchestrator.requests)
    assert [e["JobVersion"] for e in client.list_executions(job_id)] == [2]
    assert [e["JobVersion"] for e in client.list_executions(job_id, version=1)] == [1]
    listed = orchestrator.requests[before:]
    assert [r.query.get("job_version") for r in listed] == [None, ["1"]]
