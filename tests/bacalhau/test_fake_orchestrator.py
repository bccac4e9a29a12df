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
    assert [i["ComputeState"]["StateType"] for i in items] == ["Completed", "Running"]
    assert items[0]["RunOutput"]["Stdout"] == '{"count": 3}\n'
    time.sleep(0.35)
    later = requests.get(url, params={"order_by": "create_time"}).json()["Items"]
    assert later[1]["ComputeState"]["StateType"] == "Failed"
    assert later[1]["RunOutput"]["ErrorMsg"] == "boom"

    nodes = requests.get(f"{orchestrator.url}/api/v1/orchestrator/nodes").json()["Nodes"]
    assert nodes[0]["Info"]["Labels"] == {"region": "eu-1"}
    assert orchestrator.spec_violations == []


def test_requests_breaking_the_spec_are_refused(orchestrator: FakeOrchestrator, swagger):
    job = {"Name": "x", "Type": "batch", "Tasks": [{"Network": {"Type": "Wormhole"}}]}
    answer = requests.put(f"{orchestrator.url}/api/v1/orchestrator/jobs", json={"Job": job})
    assert answer.status_code == 400
    assert "Network/Type" in answer.json()["Message"]
    missing_order = requests.get(f"{orchestrator.url}/api/v1/orchestrator/jobs/j-1/executions")
    assert missing_order.status_code == 400
    assert "order_by" in missing_order.json()["Message"]
    # Recorded for the fixture's final check; cleared because these were deliberate.
    assert len(orchestrator.spec_violations) == 2
    orchestrator.spec_violations.clear()


def test_unknown_job_is_404(orchestrator: FakeOrchestrator):
    answer = requests.get(f"{orchestrator.url}/api/v1/orchestrator/jobs/j-missing")
    assert answer.status_code == 404
