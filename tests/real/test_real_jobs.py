"""Every job the stacks register, and every file in jobs/, as the real v1.9.3 judges it.

Specs come from the stacks themselves, declared under Pulumi mocks (the dev stack from
Pulumi.dev.yaml, the AWS stack from Pulumi.prod.yaml), so a rendering change that v1.9.3 would
refuse fails here. No Docker engine runs here, so docker tasks are not executed; what is tested
is what the orchestrator and the CLI accept, and where the scheduler places them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.bacalhau.provider import BacalhauJobProvider
from infra.bacalhau.spec import integral_floats_to_ints
from infra.bacalhau.templates import render_job_file, template_variables
from tests.aws.aws_harness import prod_settings, run_aws
from tests.infra.stack_harness import REPO, run_program, stack_config
from tests.real.cluster import Cluster, stop_if_active, wait_for
from tests.support.pulumi_mocks import Recorded, unwrap

JOB_TYPE = "pulumi-python:dynamic/bacalhau:Job"
DEV_STACK = REPO / "Pulumi.dev.yaml"
IMAGE = "busybox:1.36"
JOB_FILES = sorted((REPO / "jobs").rglob("*.yaml"))


def _registered(run: Recorded, stack: str) -> dict[str, dict[str, Any]]:
    """name -> the job resource's inputs as the engine hands them to the provider: decoded from
    the protobuf Struct the SDK sent (so every number is a float), secrets unwrapped."""
    return {
        f"{stack}/{r.name}": {k: v for k, v in unwrap(r.inputs).items() if not k.startswith("__")}
        for r in run.of_type(JOB_TYPE)
    }


@pytest.fixture(scope="module")
def stack_inputs() -> dict[str, dict[str, Any]]:
    """Every job resource the dev and prod stacks declare, in every region."""
    dev = run_program(stack_config(DEV_STACK))
    return _registered(dev, "dev") | _registered(run_aws(prod_settings()), "prod")


@pytest.fixture(scope="module")
def stack_specs(stack_inputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: integral_floats_to_ints(inputs["spec"]) for name, inputs in stack_inputs.items()}


def test_the_stacks_register_jobs_in_every_region(stack_specs: dict[str, dict[str, Any]]) -> None:
    dev_regions = [r["name"] for r in stack_config(DEV_STACK)["bacalhau-logs:regions"]]
    prod_regions = [r.name for r in prod_settings().regions]
    for stack, regions in (("dev", dev_regions), ("prod", prod_regions)):
        for region in regions:
            kinds = {
                spec["Labels"]["component"]
                for name, spec in stack_specs.items()
                if name.startswith(f"{stack}/") and spec["Labels"]["region"] == region
            }
            assert {"logstash", "compactor"} <= kinds, (stack, region, kinds)


def test_every_registered_job_is_accepted_through_the_provider(
    cluster: Cluster,
    stack_inputs: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each job goes the way `pulumi up` sends it: the provider's check() and create() with the
    engine's inputs, then PUT /api/v1/orchestrator/jobs, where the release validates it
    (models.Job ValidateSubmission in pkg/models/job.go, env values in pkg/models/env_var.go,
    resources in pkg/models/resource.go). A refusal is a stack that does not deploy."""
    # The test cluster's self-signed certificate, trusted the way a system CA would be.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cluster.cert))
    provider = BacalhauJobProvider(retry_budget=10)
    refused: dict[str, Any] = {}
    created = []
    for name, declared in stack_inputs.items():
        # Point the job at the test cluster; no CA lookup in SSM and no rollout wait here.
        inputs = {**declared, "endpoint": cluster.api_url, "api_key": cluster.api_key}
        inputs.pop("ca_source", None)
        inputs.pop("rollout_timeout", None)
        checked = provider.check({}, inputs)
        if checked.failures:
            refused[name] = [(f.property, f.reason) for f in checked.failures]
            continue
        try:
            created.append(provider.create(dict(checked.inputs or {})).id)
        except Exception as error:
            refused[name] = str(error)
    for job_id in created:
        stop_if_active(cluster, job_id)
    assert refused == {}
    assert len(created) == len(stack_inputs)


@pytest.fixture(scope="module")
def cli_env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The bacalhau CLI aimed at the test cluster (TLS verified, the API key from the env)."""
    home = tmp_path_factory.mktemp("cli-home")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "BACALHAU_DIR": str(home / "repo"),
        "BACALHAU_API_KEY": cluster.api_key,
    }


def _cli(cluster: Cluster, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    api = [
        "-c", "API.Host=127.0.0.1", "-c", f"API.Port={cluster.api_port}",
        "-c", "API.TLS.UseTLS=true", "-c", f"API.TLS.CAFile={cluster.cert}",
    ]  # fmt: skip
    return subprocess.run(
        [str(cluster.binary), *args, *api],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _stack_values(stack_specs: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, str]]]:
    """Template values per stack region, read back from what the stack registered."""
    for name, spec in stack_specs.items():
        if spec["Labels"].get("component") != "logstash":
            continue
        env = spec["Tasks"][0].get("Env") or {}
        yield (
            name,
            {
                "env": spec["Labels"]["env"],
                "region": spec["Labels"]["region"],
                "bucket": env["S3_BUCKET"],
                "archive_prefix": env["S3_ARCHIVE_PREFIX"],
                "s3_endpoint": env["S3_ENDPOINT"],
                "s3_region": env["S3_REGION"],
                "opensearch_url": env["OPENSEARCH_URL"],
            },
        )


def test_every_job_file_passes_the_cli_dry_run(
    cluster: Cluster,
    cli_env: dict[str, str],
    stack_specs: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> None:
    """`bacalhau job run --dry-run` parses and validates a spec the way a submission does
    (cmd/cli/job/run.go); every file in jobs/, rendered with each stack region's values the
    way the stack renders them, must pass it."""
    problems = []
    for stack_region, values in _stack_values(stack_specs):
        for path in JOB_FILES:
            variables = {name: values.get(name, _sample(name)) for name in template_variables(path)}
            rendered = tmp_path / f"{stack_region.replace('/', '_')}-{path.name}"
            rendered.write_text(yaml.safe_dump(render_job_file(path, variables)))
            result = _cli(
                cluster, cli_env, "job", "run", "--dry-run", "--no-template", str(rendered)
            )
            # Exit 1 with "the job provided is invalid: ..." on a refusal. (It also reports
            # that no job of that name exists yet, then goes on: that is not a refusal.)
            if result.returncode != 0 or "invalid" in result.stderr:
                problems.append(f"{stack_region} {path.name}: {result.stderr.strip()[:300]}")
    assert problems == []


def _sample(name: str) -> str:
    """Values the stacks render at query time (operator input), in the shape they take."""
    samples = {
        "agent_image": "registry:5000/bacalhau-logs/agent@sha256:" + "a" * 64,
        "logstash_image": "registry:5000/bacalhau-logs/logstash@sha256:" + "b" * 64,
        "since": "2025-01-01T00:00:00",
        "until": "2025-01-02T00:00:00",
        "date": "2025-01-01",
        "aggregate_duration": "60",
        "log_rate": "20",
        "opensearch_auth": "aws_iam",
        "opensearch_region": "us-east-1",
    }
    return samples.get(name, f"sample-{name}")


def test_a_job_constrained_to_a_region_considers_exactly_its_nodes(cluster: Cluster) -> None:
    """The scheduler ranks every node and says why each was not selected (job history,
    pkg/orchestrator/selection/ranking: label selectors first, then engine support): nodes of
    other regions fail the selector, the region's own nodes reach the engine check (no Docker
    here). Observed for each region of the cluster."""
    client = cluster.client()
    for region in sorted({node.labels["region"] for node in cluster.compute}):
        own = {node.name for node in cluster.compute if node.labels["region"] == region}
        others = {node.name for node in cluster.compute} - own
        spec = {
            "Name": f"placement-{region}",
            "Type": "batch",
            "Count": 1,
            "Constraints": [{"Key": "region", "Operator": "=", "Values": [region]}],
            "Tasks": [
                {"Name": "t", "Engine": {"Type": "docker", "Params": {"Image": "busybox:1.36"}}}
            ],
        }
        job_id = client.put_job(spec, None, force=True)
        message = wait_for(
            f"placement of {spec['Name']}",
            lambda job_id=job_id: _scheduling_message(cluster, job_id),
            30,
            cluster.logs,
        )
        for name in others:
            assert f"Node {name}: labels" in message and f"[region = {region}]" in message, message
        for name in own:
            assert f"Node {name}: labels" not in message, message
        assert (
            f"{len(own)} of {len(cluster.compute)} nodes: does not support docker" in message
            or (len(own) == 1 and f"Node {next(iter(own))}: does not support docker" in message)
        ), message


def _scheduling_message(cluster: Cluster, job_id: str) -> str | None:
    live = cluster.client().get_job(job_id)
    if live is None or live["State"]["StateType"] not in ("Failed", "Queued"):
        return None
    return str(live["State"].get("Message") or "") or None
