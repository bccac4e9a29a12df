"""The dynamic provider's methods against the stand-in orchestrator."""

from __future__ import annotations

import base64
import socket
import time
from typing import Any

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from infra.bacalhau.client import BacalhauAPIError, BacalhauClient, OrchestratorUnreachable
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


def test_unchanged_put_without_force_is_refused_like_bacalhau(orchestrator, make_job):
    client = BacalhauClient(orchestrator.url)
    client.put_job(make_job(), None, force=False)
    with pytest.raises(BacalhauAPIError, match="unchanged"):
        client.put_job(make_job(), None, force=False)


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
