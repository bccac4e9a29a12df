"""RegionJobs under Pulumi mocks: which jobs each region declares, where they run, in what order."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from infra.components import jobs as jobs_module
from infra.components.jobs import RegionJobs, RegionJobsArgs, canary_dependencies
from infra.settings import Secrets, parse_settings
from infra.stacks.shared import (
    CANARY_ROLLOUT_SETTLE,
    CANARY_ROLLOUT_TIMEOUT,
    JobImages,
    RegionEndpoints,
    declare_region_jobs,
)


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[str, pulumi.runtime.MockResourceArgs] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources[args.name] = args
        outputs = dict(args.inputs)
        if args.typ.endswith("dynamic/bacalhau:Job"):
            outputs.update(job_id=f"j-{args.name}", version=1, state="Running")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


@pytest.fixture
def mocks() -> RecordingMocks:
    recording = RecordingMocks()
    pulumi.runtime.set_mocks(recording, preview=False)
    return recording


@pytest.fixture
def declared_depends_on(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[pulumi.Resource]]:
    """Each job's depends_on, as RegionJobs declared it."""
    seen: dict[str, list[pulumi.Resource]] = {}
    real = jobs_module.BacalhauJob

    def recording(name: str, args: Any, opts: pulumi.ResourceOptions) -> Any:
        seen[name] = list(opts.depends_on or [])  # type: ignore[arg-type]
        return real(name, args, opts)

    monkeypatch.setattr(jobs_module, "BacalhauJob", recording)
    return seen


def _args(region: str, **changes: Any) -> RegionJobsArgs:
    values: dict[str, Any] = dict(
        region=region,
        env="dev",
        orchestrator_endpoint="http://orchestrator:1234",
        bucket=pulumi.Output.from_input(f"bacalhau-logs-dev-{region}-archive"),
        archive_prefix="logs/",
        s3_endpoint="http://storage:9000",
        s3_region="us-east-1",
        opensearch_url="http://opensearch:9200",
        agent_image="registry:5000/agent@sha256:" + "a" * 64,
        logstash_image="registry:5000/logstash@sha256:" + "b" * 64,
        aggregate_duration=60,
        generator_enabled=False,
        log_rate=20.0,
    )
    values.update(changes)
    return RegionJobsArgs(**values)


def _specs(mocks: RecordingMocks) -> dict[str, dict[str, Any]]:
    return {
        name: args.inputs["spec"]
        for name, args in mocks.resources.items()
        if args.typ.endswith("dynamic/bacalhau:Job")
    }


@pulumi.runtime.test
def test_a_region_declares_shipper_and_compactor_pinned_to_it(mocks: RecordingMocks):
    component = RegionJobs("eu-1-jobs", _args("eu-1"))

    def check(_: Any) -> None:
        specs = _specs(mocks)
        assert set(specs) == {"eu-1-jobs-logstash", "eu-1-jobs-compactor"}
        logstash, compactor = specs["eu-1-jobs-logstash"], specs["eu-1-jobs-compactor"]
        assert logstash["Name"] == "dev-eu-1-logstash" and logstash["Type"] == "daemon"
        assert compactor["Type"] == "service" and compactor["Count"] == 1
        for spec in specs.values():
            assert spec["Constraints"] == [{"Key": "region", "Operator": "=", "Values": ["eu-1"]}]
        assert logstash["Tasks"][0]["Env"]["S3_BUCKET"] == "bacalhau-logs-dev-eu-1-archive"
        assert mocks.resources["eu-1-jobs"].typ == "bacalhau-logs:index:RegionJobs"

    return pulumi.Output.all(*[job.job_id for job in component.jobs.values()]).apply(check)


@pulumi.runtime.test
def test_the_generator_is_declared_only_when_enabled(mocks: RecordingMocks):
    component = RegionJobs("eu-1-jobs", _args("eu-1", generator_enabled=True, log_rate=5.0))
    assert set(component.jobs) == {"logstash", "compactor", "generate-logs"}

    def check(_: Any) -> None:
        spec = _specs(mocks)["eu-1-jobs-generate-logs"]
        assert spec["Type"] == "daemon"
        assert spec["Tasks"][0]["Engine"]["Params"]["Parameters"][:3] == [
            "generate",
            "--rate",
            "5.0",
        ]

    return component.jobs["generate-logs"].job_id.apply(check)


@pulumi.runtime.test
def test_non_canary_regions_wait_for_the_canary(mocks, declared_depends_on):
    order = canary_dependencies(["eu-1", "us-1"], canary="eu-1")
    canary = RegionJobs("eu-1-jobs", _args("eu-1"))
    other = RegionJobs("us-1-jobs", _args("us-1", depends_on=[canary]))
    assert order == {"eu-1": [], "us-1": ["eu-1"]}
    assert declared_depends_on["eu-1-jobs-logstash"] == []
    assert declared_depends_on["us-1-jobs-logstash"] == [canary]
    assert declared_depends_on["us-1-jobs-compactor"] == [canary]
    return other.jobs["logstash"].job_id


def test_canary_ordering_without_a_canary_is_flat():
    assert canary_dependencies(["eu-1", "us-1"], None) == {"eu-1": [], "us-1": []}


def test_canary_must_be_one_of_the_regions():
    with pytest.raises(
        ValueError, match="canary region 'ap-1' is not one of the regions: eu-1, us-1"
    ):
        canary_dependencies(["eu-1", "us-1"], "ap-1")


@pulumi.runtime.test
def test_empty_env_values_are_left_out_of_the_specs(mocks: RecordingMocks):
    """Bacalhau v1.9.3 refuses a job with an empty Env value (EnvVarValue.Validate,
    pkg/models/env_var.go: "environment variable 'X' cannot have empty value", a 400). Locally
    OPENSEARCH_AUTH and OPENSEARCH_REGION render empty."""
    component = RegionJobs("eu-1-jobs", _args("eu-1", opensearch_auth="", opensearch_region=""))

    def check(_: Any) -> None:
        env = _specs(mocks)["eu-1-jobs-logstash"]["Tasks"][0]["Env"]
        assert "OPENSEARCH_AUTH" not in env and "OPENSEARCH_REGION" not in env
        assert all(value != "" for spec in _specs(mocks).values() for value in _env(spec))
        assert env["REGION"] == "eu-1"

    return component.jobs["logstash"].job_id.apply(check)


@pulumi.runtime.test
def test_only_the_canary_regions_jobs_wait_for_their_rollout(mocks, declared_depends_on):
    settings = parse_settings(
        {
            "backend": "docker",
            "regions": json.dumps([{"name": "eu-1", "nodes": 1}, {"name": "us-1", "nodes": 1}]),
            "jobs": json.dumps({"canaryRegion": "eu-1"}),
        },
        stack="dev",
    )
    endpoints = {
        region: RegionEndpoints(f"bucket-{region}", "http://storage:9000", "us-east-1", "http://os")
        for region in ("eu-1", "us-1")
    }
    declared = declare_region_jobs(
        settings,
        Secrets(orchestrator_token=None, orchestrator_api_key=None),
        orchestrator_endpoint="http://orchestrator:1234",
        images=JobImages(agent="registry/agent@sha256:a", logstash="registry/logstash@sha256:b"),
        endpoints=endpoints,
        node_env=frozenset(),
    )
    assert declared_depends_on["jobs-us-1-logstash"] == [declared["eu-1"]]

    def check(_: Any) -> None:
        waits = {
            name: (args.inputs.get("rollout_timeout"), args.inputs.get("rollout_settle"))
            for name, args in mocks.resources.items()
            if args.typ.endswith("dynamic/bacalhau:Job")
        }
        canary = (CANARY_ROLLOUT_TIMEOUT, CANARY_ROLLOUT_SETTLE)
        assert waits == {
            "jobs-eu-1-logstash": canary,
            "jobs-eu-1-compactor": canary,
            "jobs-us-1-logstash": (None, None),
            "jobs-us-1-compactor": (None, None),
        }

    jobs = [job.job_id for region in declared.values() for job in region.jobs.values()]
    return pulumi.Output.all(*jobs).apply(check)


def _env(spec: dict[str, Any]) -> list[Any]:
    return list((spec["Tasks"][0].get("Env") or {}).values())
