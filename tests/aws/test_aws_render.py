"""`python -m infra.jobs render` for the AWS stack: the spec each region registers."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_harness import AwsRun, pulled

from infra.jobs.cli import main
from tests.support.pulumi_mocks import unwrap

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("job", ["logstash", "compactor"])
def test_renders_what_the_prod_stack_registers(
    prod_run: AwsRun, tmp_path: Path, job: str, region: str
) -> None:
    outputs: dict[str, Any] = unwrap(prod_run.outputs)
    # The jobs take their images from the pull on every node, which the mocks answer with a
    # marked digest; a real pull passes the pushed references through unchanged.
    outputs["images"] = {
        name: {image: pulled(ref) for image, ref in refs.items()}
        for name, refs in outputs["images"].items()
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    out = io.StringIO()
    code = main(["render", job, "--stack", "prod", "--region", region, "--outputs", str(path)], out)
    assert code == 0
    spec = yaml.safe_load(out.getvalue())
    assert spec == unwrap(prod_run.named(f"jobs-{region}-{job}").inputs["spec"])
    # The instance role answers every credential on AWS: no env: reference is left to resolve.
    assert not [v for v in spec["Tasks"][0].get("Env", {}).values() if v.startswith("env:")]
