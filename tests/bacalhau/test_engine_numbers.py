"""Numbers as the Pulumi engine delivers them: every one a double (issue 10, item 1)."""

from __future__ import annotations

import requests

from infra.bacalhau.spec import integral_floats_to_ints
from tests.bacalhau.conftest import as_engine_sends, service_job
from tests.support.fake_orchestrator import FakeOrchestrator


def _engine_props(orchestrator: FakeOrchestrator, **extra: object) -> dict:
    props = {"endpoint": orchestrator.url, "spec": service_job(), "namespace": None, **extra}
    return as_engine_sends(props)


def test_the_engine_turns_count_into_a_float():
    """The premise: a Struct has only doubles, so the compactor's Count 1 arrives as 1.0."""
    received = as_engine_sends({"spec": service_job()})
    assert received["spec"]["Count"] == 1.0
    assert isinstance(received["spec"]["Count"], float)


def test_check_accepts_count_as_the_engine_sends_it(provider, orchestrator):
    assert provider.check({}, _engine_props(orchestrator)).failures == []


def test_create_sends_count_as_an_integer(provider, orchestrator):
    """Go's decoder refuses 1.0 for an int (``Count *int`` in Job.UnmarshalJSON,
    pkg/models/job.go at v1.9.3): a real v1.9.3 answers 400 "Unmarshal type error: expected=int,
    got=number 1.0, field=Job.Count"."""
    result = provider.create(_engine_props(orchestrator, rollout_timeout=None))
    put = next(r for r in orchestrator.writes if r.method == "PUT")
    assert type(put.body["Job"]["Count"]) is int
    assert orchestrator.jobs[result.id]["Count"] == 1
    assert result.outs["spec"]["Count"] == 1


def test_every_method_takes_engine_numbers(provider, orchestrator):
    created = provider.create(_engine_props(orchestrator))
    olds = as_engine_sends(created.outs)
    news = _engine_props(orchestrator, spec=service_job(Count=2, Priority=3))
    assert provider.diff(created.id, olds, _engine_props(orchestrator)).changes is False
    updated = provider.update(created.id, olds, news)
    assert orchestrator.jobs[created.id]["Count"] == 2
    assert type(orchestrator.writes[-1].body["Job"]["Priority"]) is int
    refreshed = provider.read(created.id, as_engine_sends(updated.outs))
    assert refreshed.outs["spec"] == service_job(Count=2, Priority=3)
    provider.delete(created.id, as_engine_sends(refreshed.outs))
    assert orchestrator.jobs[created.id]["State"]["StateType"] == "Stopped"


def test_the_stand_in_refuses_a_float_count_as_v193_does(orchestrator):
    """Observed on a real v1.9.3: HTTP 400, "code=400, message=Unmarshal type error:
    expected=int, got=number 1.0, field=Job.Count, ..." (echo's DefaultJSONSerializer)."""
    answer = requests.put(
        f"{orchestrator.url}/api/v1/orchestrator/jobs", json={"Job": service_job(Count=1.0)}
    )
    assert answer.status_code == 400
    assert answer.json()["Message"].startswith(
        "code=400, message=Unmarshal type error: expected=int, got=number 1.0, field=Job.Count"
    )
    assert orchestrator.jobs == {}


def test_integral_floats_become_ints_at_any_depth_and_others_stay():
    value = {"a": [1.0, 2.5, {"b": 3.0}], "c": True, "d": "1.0", "e": None, "f": -0.0}
    assert integral_floats_to_ints(value) == {
        "a": [1, 2.5, {"b": 3}],
        "c": True,
        "d": "1.0",
        "e": None,
        "f": 0,
    }
    assert type(integral_floats_to_ints(value)["a"][0]) is int
