"""`python -m infra.jobs render`: exactly the spec the stack registers, ready to run by hand."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from stack_harness import REPO, StackRun, run_program, stack_config

from infra.bacalhau.spec import validate
from infra.jobs.cli import main
from tests.support.pulumi_mocks import unwrap

JOBS = ("logstash", "compactor", "generate-logs")
REGIONS = ("us-east-1", "eu-west-1")


@pytest.fixture(scope="module")
def dev() -> StackRun:
    return run_program(stack_config(REPO / "Pulumi.dev.yaml"), stack="dev")


@pytest.fixture(scope="module")
def outputs_file(dev: StackRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("outputs") / "outputs.json"
    path.write_text(json.dumps(unwrap(dev.outputs)))
    return path


def render(*argv: str) -> tuple[int, dict[str, Any] | None, str]:
    out = io.StringIO()
    err = io.StringIO()
    original = sys.stderr
    sys.stderr = err
    try:
        code = main(["render", *argv], stdout=out)
    finally:
        sys.stderr = original
    document = yaml.safe_load(out.getvalue()) if out.getvalue() else None
    return code, document, err.getvalue()


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("job", JOBS)
def test_renders_what_the_dev_stack_registers(
    dev: StackRun, outputs_file: Path, job: str, region: str
) -> None:
    code, spec, err = render(
        job, "--stack", "dev", "--region", region, "--outputs", str(outputs_file)
    )
    assert code == 0, err
    assert spec == unwrap(dev.named(f"jobs-{region}-{job}").inputs["spec"])


def test_rendered_specs_are_ready_to_run(outputs_file: Path) -> None:
    """What made `bacalhau job run --template-vars` fail on every node: env: references to
    variables the node lacks (the env resolver bid strategy, pkg/bidstrategy/semantic/
    env_resolver.go) and empty values (pkg/models/env_var.go "cannot have empty value")."""
    code, spec, _ = render(
        "logstash", "--stack", "dev", "--region", "us-east-1", "--outputs", str(outputs_file)
    )
    assert code == 0 and spec is not None
    assert validate(spec) == []
    env = spec["Tasks"][0]["Env"]
    assert "" not in env.values()
    assert "OPENSEARCH_USER" not in env  # the dev nodes define no OpenSearch credentials
    assert env["AWS_ACCESS_KEY_ID"] == "env:LOGS_S3_ACCESS_KEY_ID"
    assert "{{" not in json.dumps(spec)


def test_set_supplies_values_without_outputs(tmp_path: Path) -> None:
    empty = tmp_path / "outputs.json"
    empty.write_text("{}")
    code, _, err = render(
        "compactor", "--stack", "dev", "--region", "us-east-1", "--outputs", str(empty)
    )
    assert code == 2
    assert "no value for agent_image (stack output images.agent)" in err
    assert "bucket (stack output buckets.us-east-1)" in err
    code, spec, err = render(
        "compactor",
        "--stack",
        "dev",
        "--region",
        "us-east-1",
        "--outputs",
        str(empty),
        "--set",
        "agent_image=registry:5000/agent@sha256:" + "a" * 64,
        "--set",
        "bucket=my-bucket",
    )
    assert code == 0, err
    assert spec is not None
    assert spec["Tasks"][0]["Engine"]["Params"]["Image"].endswith("a" * 64)
    assert "my-bucket" in spec["Tasks"][0]["Engine"]["Params"]["Parameters"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compactor", "--stack", "../etc", "--region", "us-east-1"], "--stack '../etc'"),
        (["compactor", "--stack", "nosuch", "--region", "us-east-1"], "cannot read the stack"),
        (["compactor", "--stack", "dev", "--region", "mars-1"], "region 'mars-1' is not in"),
        (
            ["compactor", "--stack", "dev", "--region", "us-east-1", "--set", "opensearch_url=x"],
            "--set opensearch_url: not a variable of compactor.yaml",
        ),
        (["compactor", "--stack", "dev", "--region", "us-east-1", "--set", "bucket"], "NAME=VALUE"),
    ],
)
def test_bad_input_is_one_line_naming_it(outputs_file: Path, argv: list[str], message: str) -> None:
    code, spec, err = render(*argv, "--outputs", str(outputs_file))
    assert code == 2
    assert spec is None
    assert message in err
    assert err.count("\n") == 1


def test_runs_as_a_module(outputs_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.jobs", "render", "compactor", "--stack", "dev",
         "--region", "eu-west-1", "--outputs", str(outputs_file)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["Name"] == "dev-eu-west-1-compactor"
