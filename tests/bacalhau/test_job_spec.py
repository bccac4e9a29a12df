"""Pure spec rules: normalization for diff, and validation before any API call."""

from __future__ import annotations

import pytest

from infra.bacalhau.spec import (
    fixed_field_changes,
    normalize,
    project,
    same_spec,
    validate,
    without_empty_env_values,
)
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


def test_resource_units_compare_as_bacalhau_stores_them(make_job: JobFactory):
    """ResourcesConfig.Normalize (pkg/models/resource.go at v1.9.3) lower-cases CPU, Memory, Disk
    and GPU and strips spaces before storing, and Job.CompareWith lower-cases them again: "500M"
    is stored, scheduled and compared as "500m", so a diff must not see a change there."""
    millicores = make_job()
    millicores["Tasks"][0]["Resources"] = {"CPU": "500m", "Memory": "1gb", "GPU": "1"}
    shouted = make_job()
    shouted["Tasks"][0]["Resources"] = {"CPU": "500M", "Memory": "1 GB", "GPU": "1"}
    assert same_spec(millicores, shouted)
    more = make_job()
    more["Tasks"][0]["Resources"] = {"CPU": "600m", "Memory": "1gb", "GPU": "1"}
    assert not same_spec(millicores, more)
    assert not same_spec(make_job(), make_job(Labels={"tier": "edge"}))


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


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"OPENSEARCH_AUTH": ""}, "Tasks[0].Env.OPENSEARCH_AUTH: empty value"),
        ({"lower": "x"}, "Tasks[0].Env.lower: the name must be upper case letters"),
        ({"1ST": "x"}, "Tasks[0].Env.1ST: the name must be upper case letters"),
        ({"BACALHAU_X": "x"}, "Tasks[0].Env.BACALHAU_X: names starting with BACALHAU_ are"),
        ({"N": 3}, "Tasks[0].Env.N: 3 is not a string"),
    ],
)
def test_env_entries_bacalhau_refuses_are_named(make_job: JobFactory, env, problem):
    """models.ValidateEnvVars (pkg/models/env_var.go at v1.9.3), run by Task.ValidateSubmission
    at PUT: empty values ("cannot have empty value"), names not upper case, not starting with a
    letter or with other characters, and the BACALHAU_ prefix are all a 400."""
    job = make_job()
    job["Tasks"][0]["Env"] = env
    (found,) = validate(job)
    assert found.startswith(f"job 'dev-eu-1-logstash': {problem}")


def test_empty_env_values_are_dropped_and_references_kept(make_job: JobFactory):
    job = make_job()
    job["Tasks"][0]["Env"] = {"A": "", "B": "x", "C": "env:LOGS_C"}
    cleaned = without_empty_env_values(job)
    assert cleaned["Tasks"][0]["Env"] == {"B": "x", "C": "env:LOGS_C"}
    assert job["Tasks"][0]["Env"]["A"] == ""
    assert validate(cleaned) == []


def test_normalize_follows_job_normalize(make_job: JobFactory):
    """Job.Normalize and Job.UnmarshalJSON (pkg/models/job.go at v1.9.3): an empty namespace is
    "default", daemon and ops Count is always 0, a batch or service job without Count runs 1;
    empty maps and lists equal absent ones; submitted bacalhau.org/ Meta is dropped."""
    assert same_spec(make_job(Count=1), make_job(Namespace="default"))
    assert same_spec(make_job(Type="service"), make_job(Type="service", Count=1))
    assert not same_spec(make_job(Type="service"), make_job(Type="service", Count=0))
    assert same_spec(make_job(Meta={}, Labels={}), make_job(Meta={"bacalhau.org/x": "y"}))
    assert not same_spec(make_job(Meta={"bacalhau.org.team": "y"}), make_job())


def test_fixed_field_changes_are_the_fields_an_update_drops(make_job: JobFactory):
    """BoltJobStore.updateJob (pkg/jobstore/boltdb/store.go at v1.9.3) copies Priority, Count,
    Constraints, Meta, Labels and Tasks; everything else stays as first stored."""
    old = make_job()
    new = make_job(Type="service", Namespace="team-b", Priority=4, Labels={"a": "b"}, Count=2)
    assert fixed_field_changes(old, new) == ["Namespace", "Type"]
    assert fixed_field_changes(old, make_job(Namespace="default")) == []


def test_zero_struct_fields_are_the_same_as_absent_ones():
    """Observed on v1.9.3: a task sent with ``Timeouts: {ExecutionTimeout: 0}`` comes back as
    ``Timeouts: {}`` (omitempty, pkg/models/task.go), so a refresh must not call it drift."""
    sent = {
        "Name": "j",
        "Type": "daemon",
        "Tasks": [{"Name": "t", "Timeouts": {"ExecutionTimeout": 0}}],
    }
    stored = {"Name": "j", "Type": "daemon", "Tasks": [{"Name": "t", "Timeouts": {}}]}
    assert same_spec(sent, stored)


def test_zero_values_inside_maps_are_data():
    """Env, Labels, Meta and Params are Go maps: an entry is kept whatever its value."""
    flag_off = {
        "Name": "j",
        "Type": "daemon",
        "Tasks": [{"Name": "t", "Engine": {"Type": "docker", "Params": {"Privileged": False}}}],
    }
    no_flag = {
        "Name": "j",
        "Type": "daemon",
        "Tasks": [{"Name": "t", "Engine": {"Type": "docker", "Params": {}}}],
    }
    assert not same_spec(flag_off, no_flag)
