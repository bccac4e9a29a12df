"""The stand-in itself: its answers conform to the API spec and injected executions behave."""

from __future__ import annotations

import time

import requests

from tests.bacalhau.conftest import JobFactory
from tests.support.fake_orchestrator import FakeOrchestrator


def test_executions_and_nodes_have_spec_conformant_shapes(
    orchestrator: FakeOrchestrator, make_job: JobFactory, swagger
):
    job_id = requests.put(
        f"{orchestrator.url}/api/v1/orchestrator/jobs", json={"Job": make_job()}
    ).json()["JobID"]
    orchestrator.add_node("node-1", {"region": "eu-1"})
    orchestrator.add_execution(job_id, "node-1", stdout='{"count": 3}\n')
    orchestrator.add_execution(
        job_id, "node-2", state="Failed", exit_code=1, error="boom", delay=0.3
    )
    url = f"{orchestrator.url}/api/v1/orchestrator/jobs/{job_id}/executions"

    items = requests.get(url, params={"order_by": "create_time"}).json()["Items"]
    # models.ExecutionStateType has no MarshalText: 9 is Completed, 6 Running.
    assert [i["ComputeState"]["StateType"] for i in items] == [9, 6]
    assert items[0]["RunOutput"]["Stdout"] == '{"count": 3}\n'
    time.sleep(0.35)
    later = requests.get(url, params={"order_by": "create_time"}).json()["Items"]
    assert later[1]["ComputeState"] == {"StateType": 10, "Message": "boom"}
    assert later[1]["RunOutput"]["ErrorMsg"] == "boom"

    nodes = requests.get(f"{orchestrator.url}/api/v1/orchestrator/nodes").json()["Nodes"]
    assert nodes[0]["Info"]["Labels"] == {"region": "eu-1"}
    assert orchestrator.spec_violations == []


def test_requests_breaking_the_spec_are_refused(orchestrator: FakeOrchestrator, swagger):
    job = {"Name": "x", "Type": "batch", "Tasks": [{"Network": {"Type": "Wormhole"}}]}
    answer = requests.put(f"{orchestrator.url}/api/v1/orchestrator/jobs", json={"Job": job})
    assert answer.status_code == 400
    assert "Network/Type" in answer.json()["Message"]
    unknown_parameter = requests.get(
        f"{orchestrator.url}/api/v1/orchestrator/jobs/j-1/executions", params={"sort": "x"}
    )
    assert unknown_parameter.status_code == 400
    assert "sort" in unknown_parameter.json()["Message"]
    # Recorded for the fixture's final check; cleared because these were deliberate.
    assert len(orchestrator.spec_violations) == 2
    orchestrator.spec_violations.clear()


def test_unknown_job_is_404(orchestrator: FakeOrchestrator):
    answer = requests.get(f"{orchestrator.url}/api/v1/orchestrator/jobs/j-missing")
    assert answer.status_code == 404


JOBS = "/api/v1/orchestrator/jobs"


def _put(orchestrator: FakeOrchestrator, job: dict, **body: object) -> requests.Response:
    return requests.put(f"{orchestrator.url}{JOBS}", json={"Job": job, **body})


def test_empty_env_value_is_a_400_with_the_release_message(
    orchestrator: FakeOrchestrator, make_job: JobFactory
):
    """Answer of a real v1.9.3 to the same request (Task.ValidateSubmission -> ValidateEnvVars)."""
    job = make_job()
    job["Tasks"][0]["Env"] = {"OPENSEARCH_AUTH": ""}
    answer = _put(orchestrator, job)
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "Status": 400,
            "Message": "task main validation failed: environment variable 'OPENSEARCH_AUTH' "
            "cannot have empty value",
            "RequestID": "",
            "Code": "InternalError",
            "Component": "APIServer",
        },
    )


def test_an_unchanged_spec_without_force_is_a_codeless_500(
    orchestrator: FakeOrchestrator, make_job: JobFactory
):
    """Answer of a real v1.9.3 (BaseEndpoint.SubmitJob, bacerrors without code -> 500), also when
    only resource case or an empty Env differ (Job.CompareWith after Normalize)."""
    job_id = _put(orchestrator, make_job()).json()["JobID"]
    same = make_job()
    same["Tasks"][0]["Resources"] = {"CPU": "1", "Memory": "1 gb"}
    same["Tasks"][0]["Env"] = {}
    answer = _put(orchestrator, same)
    assert answer.status_code == 500
    assert answer.json() == {
        "Status": 500,
        "Message": "no changes detected for new job spec. "
        f"Job Name: 'dev-eu-1-logstash', Job Id: '{job_id}'",
        "RequestID": "",
        "Code": "",
        "Component": "Bacalhau",
        "Hint": "Use the --force flag to override this warning",
    }
    assert _put(orchestrator, same, Force=True).status_code == 200
    assert orchestrator.jobs[job_id]["Version"] == 2


def test_an_update_copies_only_the_six_fields(orchestrator: FakeOrchestrator, make_job):
    """BoltJobStore.updateJob; on a real v1.9.3 a Type change bumped the version, kept the Type
    and swapped the tasks; Count of a daemon job is stored as 0 (Job.Normalize)."""
    job_id = _put(orchestrator, make_job()).json()["JobID"]
    changed = make_job(Type="service", Count=2, Priority=5, Labels={"a": "b"})
    changed["Tasks"][0]["Engine"]["Params"]["Image"] = "logstash:2"
    assert _put(orchestrator, changed).json()["JobID"] == job_id
    stored = orchestrator.jobs[job_id]
    assert (stored["Type"], stored["Count"], stored["Priority"]) == ("daemon", 0, 5)
    assert stored["Labels"] == {"a": "b"} and stored["Version"] == 2
    assert stored["Tasks"][0]["Engine"]["Params"]["Image"] == "logstash:2"


def test_the_body_namespace_is_ignored(orchestrator: FakeOrchestrator, make_job: JobFactory):
    """On a real v1.9.3, {"Job": ..., "namespace": "team-b"} files the job under "default"."""
    job_id = _put(orchestrator, make_job(), namespace="team-b").json()["JobID"]
    assert orchestrator.jobs[job_id]["Namespace"] == "default"
    by_name = requests.get(f"{orchestrator.url}{JOBS}/dev-eu-1-logstash?namespace=default")
    assert by_name.json()["Job"]["ID"] == job_id


def test_stop_reads_the_reason_from_the_body(orchestrator: FakeOrchestrator, make_job):
    """On a real v1.9.3 ?reason= left State.Message empty and a body reason was recorded;
    stopping again answers 200 without an evaluation (BaseEndpoint.StopJob)."""
    first = _put(orchestrator, make_job()).json()["JobID"]
    second = _put(orchestrator, make_job(name="other")).json()["JobID"]
    requests.delete(f"{orchestrator.url}{JOBS}/{first}", params={"reason": "in query"})
    requests.delete(f"{orchestrator.url}{JOBS}/{second}", json={"reason": "in body"})
    assert orchestrator.jobs[first]["State"] == {"StateType": "Stopped", "Message": ""}
    assert orchestrator.jobs[second]["State"] == {"StateType": "Stopped", "Message": "in body"}
    again = requests.delete(f"{orchestrator.url}{JOBS}/{second}", json={"reason": "again"})
    assert (again.status_code, again.json()) == (200, {"EvaluationID": ""})


def test_executions_answer_one_version_and_no_next_token(
    orchestrator: FakeOrchestrator, make_job: JobFactory
):
    """BoltJobStore.getExecutions filters to the latest version unless job_version or
    all_job_versions is given, and orchestrator.jobExecutions never sets NextToken; an update
    cancels the previous version's executions (checked on a real v1.9.3)."""
    job_id = _put(orchestrator, make_job()).json()["JobID"]
    orchestrator.add_execution(job_id, "n-1", state="Running")
    _put(orchestrator, make_job(Priority=1))
    orchestrator.add_execution(job_id, "n-1", state="Running")
    url = f"{orchestrator.url}{JOBS}/{job_id}/executions"

    def listed(**params: str) -> list[tuple[int, int]]:
        answer = requests.get(url, params={"order_by": "create_time", **params}).json()
        assert answer["NextToken"] == ""
        return [(e["JobVersion"], e["ComputeState"]["StateType"]) for e in answer["Items"]]

    assert listed() == [(2, 6)]
    assert listed(job_version="1") == [(1, 11)]
    assert listed(all_job_versions="true") == [(1, 11), (2, 6)]
