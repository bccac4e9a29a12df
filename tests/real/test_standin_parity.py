"""The stand-in orchestrator (tests/support/fake_orchestrator.py) must answer as v1.9.3 does.

Most provider and ops tests run against the stand-in, because it can do what the real release
cannot here (injected 503s, slow or failing executions, truncated stdout). Each request below is
one both can serve: it is sent to both, and the answers (status, the meaningful part of the
message, and the state that results) must agree.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from infra.bacalhau.client import JOBS_PATH, NODES_PATH
from tests.real.cluster import Cluster
from tests.support.fake_orchestrator import FakeOrchestrator
from tests.support.swagger import SwaggerSpec

API_KEY = "parity-key-0123456789abcdef"
_names = itertools.count()


@dataclass
class Target:
    """One orchestrator to send raw API requests to."""

    label: str
    url: str
    api_key: str
    verify: str | bool

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> Answer:
        headers = {"Authorization": f"Bearer {self.api_key if key is None else key}"}
        response = requests.request(
            method, self.url + path, json=body, headers=headers, verify=self.verify, timeout=10
        )
        payload = response.json() if response.content else {}
        return Answer(response.status_code, payload)


@dataclass
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def message(self) -> str:
        return str(self.body.get("Message") or self.body.get("message") or "")


@pytest.fixture(scope="module")
def standin(swagger_spec: SwaggerSpec) -> Iterator[FakeOrchestrator]:
    with FakeOrchestrator(swagger=swagger_spec, api_key=API_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def swagger_spec() -> SwaggerSpec:
    from tests.infra.stack_harness import REFERENCE

    return SwaggerSpec(REFERENCE / "swagger-v1.9.3.json")


@pytest.fixture(scope="module")
def targets(cluster: Cluster, standin: FakeOrchestrator) -> list[Target]:
    return [
        Target("v1.9.3", cluster.api_url, cluster.api_key, str(cluster.cert)),
        Target("stand-in", standin.url, API_KEY, True),
    ]


def _job(**changes: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "Name": f"parity-{next(_names)}",
        "Type": "daemon",
        "Constraints": [{"Key": "region", "Operator": "=", "Values": ["nowhere"]}],
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "docker", "Params": {"Image": "busybox:1.36"}},
                "Env": {"MODE": "test"},
            }
        ],
    }
    job.update(changes)
    return job


def _both(targets: list[Target], request: Callable[[Target], Answer]) -> dict[str, Answer]:
    return {target.label: request(target) for target in targets}


def _same_status(answers: dict[str, Answer]) -> int:
    statuses = {label: answer.status for label, answer in answers.items()}
    assert len(set(statuses.values())) == 1, {k: (v.status, v.body) for k, v in answers.items()}
    return next(iter(statuses.values()))


def test_a_submission_is_accepted_the_same(targets: list[Target]) -> None:
    job = _job()
    answers = _both(targets, lambda t: t.call("PUT", JOBS_PATH, {"Job": job}))
    assert _same_status(answers) == 200
    assert all(a.body["JobID"].startswith("j-") for a in answers.values())


def test_an_empty_env_value_is_refused_the_same(targets: list[Target]) -> None:
    """pkg/models/env_var.go: "cannot have empty value"."""
    job = _job()
    job["Tasks"][0]["Env"] = {"EMPTY": ""}
    answers = _both(targets, lambda t: t.call("PUT", JOBS_PATH, {"Job": job}))
    assert _same_status(answers) == 400
    assert all("cannot have empty value" in a.message for a in answers.values()), answers


def test_a_float_count_is_refused_the_same(targets: list[Target]) -> None:
    """Go's decoder refuses 1.0 for Count *int (pkg/models/job.go)."""
    job = _job(Type="service", Count=1.0)
    answers = _both(targets, lambda t: t.call("PUT", JOBS_PATH, {"Job": job}))
    assert _same_status(answers) == 400
    assert all("Unmarshal type error" in a.message for a in answers.values()), answers


def test_an_unchanged_resubmission_is_a_500_the_same(targets: list[Target]) -> None:
    """pkg/orchestrator/endpoint.go: "no changes detected for new job spec", HTTP 500, no code."""
    job = _job()
    for target in targets:
        assert target.call("PUT", JOBS_PATH, {"Job": job}).status == 200
    answers = _both(targets, lambda t: t.call("PUT", JOBS_PATH, {"Job": job}))
    assert _same_status(answers) == 500
    assert all("no changes detected" in a.message for a in answers.values()), answers
    forced = _both(targets, lambda t: t.call("PUT", JOBS_PATH, {"Job": job, "Force": True}))
    assert _same_status(forced) == 200


def test_an_update_keeps_the_type_the_same(targets: list[Target]) -> None:
    """An update copies only Priority, Count, Constraints, Meta, Labels and Tasks
    (pkg/jobstore/boltdb/store.go): a new Type under the same Name is not applied."""
    job = _job()
    changed = {**job, "Type": "service", "Count": 1, "Priority": 3}
    types = {}
    for target in targets:
        assert target.call("PUT", JOBS_PATH, {"Job": job}).status == 200
        answer = target.call("PUT", JOBS_PATH, {"Job": changed})
        live = target.call("GET", f"{JOBS_PATH}/{job['Name']}").body["Job"]
        types[target.label] = (answer.status, live["Type"], live["Priority"], live["Version"])
    assert len(set(types.values())) == 1, types


def test_stop_takes_its_reason_from_the_body_the_same(targets: list[Target]) -> None:
    """pkg/publicapi/apimodels StopJobRequest: the reason is a JSON body field; a query
    parameter is ignored."""
    states = {}
    for target in targets:
        job = _job()
        job_id = target.call("PUT", JOBS_PATH, {"Job": job}).body["JobID"]
        answer = target.call("DELETE", f"{JOBS_PATH}/{job_id}", {"Reason": "parity stop"})
        live = target.call("GET", f"{JOBS_PATH}/{job_id}").body["Job"]
        states[target.label] = (answer.status, live["State"]["StateType"], live["State"]["Message"])
    assert len(set(states.values())) == 1, states
    assert next(iter(states.values())) == (200, "Stopped", "parity stop")


def test_unknown_jobs_and_missing_keys_are_refused_the_same(targets: list[Target]) -> None:
    unknown = _both(targets, lambda t: t.call("GET", f"{JOBS_PATH}/j-does-not-exist"))
    assert _same_status(unknown) == 404
    unauthenticated = _both(targets, lambda t: t.call("GET", JOBS_PATH, key="x" * 30))
    assert _same_status(unauthenticated) == 401


def test_node_and_execution_listings_never_page_the_same(targets: list[Target]) -> None:
    """The nodes and executions endpoints answer everything in one page: NextToken is never
    set (pkg/publicapi/endpoint/orchestrator)."""
    for target in targets:
        nodes = target.call("GET", NODES_PATH)
        assert nodes.status == 200 and not nodes.body.get("NextToken"), target.label
        job_id = target.call("PUT", JOBS_PATH, {"Job": _job()}).body["JobID"]
        executions = target.call("GET", f"{JOBS_PATH}/{job_id}/executions")
        assert executions.status == 200 and not executions.body.get("NextToken"), target.label
