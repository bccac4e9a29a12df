"""Pure spec rules: normalization for diff, and validation before any API call."""

from __future__ import annotations

import pytest

from infra.bacalhau.spec import normalize, project, same_spec, validate
from tests.bacalhau.conftest import JobFactory


def test_server_fields_key_order_system_meta_and_unit_case_do_not_differ(make_job: JobFactory):
    declared = make_job(Meta={"owner": "ops"})
    live = {
        "ID": "j-1",
        "Version": 3,
        "Revision": 7,
        "CreateTime": 1,
        "ModifyTime": 2,
        "State": {"StateType": "Running"},
        "Meta": {"owner": "ops", "bacalhau.org/requester.id": "node-0"},
        **{k: v for k, v in reversed(list(declared.items())) if k != "Meta"},
    }
    live["Tasks"] = [{**declared["Tasks"][0], "Resources": {"Memory": "1Gb", "CPU": "1"}}]
    assert same_spec(declared, live)


def test_cpu_case_and_real_changes_do_differ(make_job: JobFactory):
    job = make_job()
    millicores = make_job()
    millicores["Tasks"][0]["Resources"]["CPU"] = "500m"
    mega = make_job()
    mega["Tasks"][0]["Resources"]["CPU"] = "500M"
    assert not same_spec(millicores, mega)
    assert not same_spec(job, make_job(Labels={"tier": "edge"}))


def test_normalize_drops_meta_left_empty(make_job: JobFactory):
    assert "Meta" not in normalize(make_job(Meta={"bacalhau.org/client.id": "x"}))


def test_project_ignores_server_defaults_but_keeps_declared_drift(make_job: JobFactory):
    declared = make_job()
    live = make_job(Priority=0, Count=0, Namespace="default")
    live["Tasks"][0]["Timeouts"] = {"ExecutionTimeout": 0}
    assert project(live, declared) == declared
    live["Tasks"][0]["Engine"]["Params"]["Image"] = "logstash:2"
    assert project(live, declared)["Tasks"][0]["Engine"]["Params"]["Image"] == "logstash:2"


def test_a_valid_job_has_no_problems(make_job: JobFactory):
    assert validate(make_job()) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"Type": "cron"}, "Type: 'cron' is not one of batch, service, daemon, ops"),
        ({"Count": 3}, "Count: 3 is not allowed for daemon jobs"),
        ({"Type": "ops", "Count": 2}, "Count: 2 is not allowed for ops jobs"),
        ({"Count": -1}, "Count: -1 is not a non-negative integer"),
        ({"Tasks": []}, "Tasks: exactly one task is required, found 0"),
        ({"Name": ""}, "Name: required"),
        (
            {"Constraints": [{"Key": "region", "Operator": "=~", "Values": ["x"]}]},
            "Constraints[0].Operator: '=~' is not one of",
        ),
        ({"Constraints": [{"Operator": "exists"}]}, "Constraints[0].Key: required"),
    ],
)
def test_each_bad_input_is_named(make_job: JobFactory, changes: dict, field: str):
    problems = validate(make_job(**changes))
    assert len(problems) == 1
    assert problems[0].startswith("job '")
    assert field in problems[0]


def test_two_tasks_and_engine_missing_are_reported_with_the_job_name(make_job: JobFactory):
    two = make_job()
    two["Tasks"] = two["Tasks"] * 2
    assert validate(two) == [
        "job 'dev-eu-1-logstash': Tasks: exactly one task is required, found 2"
    ]
    no_engine = make_job()
    del no_engine["Tasks"][0]["Engine"]
    assert validate(no_engine) == ["job 'dev-eu-1-logstash': Tasks[0].Engine.Type: required"]


def test_service_jobs_may_have_a_count(make_job: JobFactory):
    assert validate(make_job(Type="service", Count=3)) == []


@pytest.mark.parametrize("operator", ["!", "=", "==", "in", "!=", "notin", "exists", "gt", "lt"])
def test_every_bacalhau_operator_is_accepted(make_job: JobFactory, operator: str):
    constraint = {"Key": "region", "Operator": operator, "Values": ["eu-1"]}
    assert validate(make_job(Constraints=[constraint])) == []


def test_operators_match_the_api_spec(swagger):
    from infra.bacalhau.spec import CONSTRAINT_OPERATORS

    assert (
        set(swagger.document["definitions"]["selection.Operator"]["enum"]) == CONSTRAINT_OPERATORS
    )
