"""Stack outputs from a file or the Automation API, and the published-result reader."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import types
from pathlib import Path

import pulumi
import pytest

from infra.ops.outputs import OutputsError, StackOutputs, load_outputs
from infra.ops.published import read_stdout, stdout_location


def test_outputs_file_is_read_and_optional_keys_are_tolerated(tmp_path: Path):
    path = tmp_path / "outputs.json"
    path.write_text(
        json.dumps(
            {
                "backend": "aws",
                "orchestratorApiUrl": "https://orchestrator:1234",
                "buckets": {"us-east-1": "b1", "eu-west-1": "b2"},
                "s3Endpoints": {"us-east-1": "https://s3.us-east-1.amazonaws.com"},
                "images": {"us-east-1": {"agent": "ecr/agent@sha256:1"}},
            }
        )
    )
    outputs = load_outputs(path, "prod")
    assert outputs.api_url == "https://orchestrator:1234"
    assert outputs.regions == ["eu-west-1", "us-east-1"]
    assert outputs.agent_image("us-east-1") == "ecr/agent@sha256:1"
    assert outputs.s3_endpoint is None  # AWS: boto3 defaults for the region
    assert outputs.nodes() is None
    assert outputs.archive_prefix == "logs/"
    with pytest.raises(OutputsError, match=r"'images.eu-west-1.agent'|'images.agent'"):
        outputs.agent_image("eu-west-1")
    with pytest.raises(OutputsError, match="stack output 'jobs' is missing from stack 'prod'"):
        outputs.jobs()


def test_unreadable_outputs_file_names_the_flag(tmp_path: Path):
    with pytest.raises(OutputsError, match=r"--outputs .*missing\.json: cannot read"):
        load_outputs(tmp_path / "missing.json", "dev")


def test_without_a_file_the_automation_api_selects_the_stack(monkeypatch: pytest.MonkeyPatch):
    selected: dict[str, str] = {}

    class Stack:
        def outputs(self):
            value = types.SimpleNamespace
            return {"orchestratorApiUrl": value(value="http://o:1234", secret=False)}

    def select_stack(stack_name: str, work_dir: str) -> Stack:
        selected.update(stack=stack_name, work_dir=work_dir)
        return Stack()

    fake = types.ModuleType("pulumi.automation")
    fake.select_stack = select_stack  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pulumi.automation", fake)
    monkeypatch.setattr(pulumi, "automation", fake, raising=False)
    outputs = load_outputs(None, "staging")
    assert outputs == StackOutputs("staging", {"orchestratorApiUrl": "http://o:1234"})
    assert selected["stack"] == "staging"
    assert (Path(selected["work_dir"]) / "Pulumi.yaml").exists()


def test_automation_api_failure_suggests_outputs_file(monkeypatch: pytest.MonkeyPatch):
    def select_stack(**_: str) -> None:
        raise RuntimeError("pulumi: command not found")

    fake = types.ModuleType("pulumi.automation")
    fake.select_stack = select_stack  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pulumi.automation", fake)
    monkeypatch.setattr(pulumi, "automation", fake, raising=False)
    with pytest.raises(OutputsError, match="pass --outputs FILE"):
        load_outputs(None, "dev")


class _Bucket:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_object(self, Bucket: str, Key: str) -> dict[str, io.BytesIO]:
        return {"Body": io.BytesIO(self.objects[Key])}


def test_published_stdout_plain_and_compressed():
    plain = {"Type": "s3", "Params": {"Bucket": "b", "Key": "ops-results/j/e/"}}
    assert stdout_location(plain) == ("b", "ops-results/j/e/stdout")
    assert stdout_location({"Type": "local", "Params": {"URL": "x"}}) is None
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b'[{"n": 1}]\n'
        member = tarfile.TarInfo("./stdout")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    bucket = _Bucket({"r.tar.gz": archive.getvalue(), "ops-results/j/e/stdout": b"[]"})
    assert read_stdout(bucket, "b", "r.tar.gz") == '[{"n": 1}]\n'  # type: ignore[arg-type]
    assert read_stdout(bucket, "b", "ops-results/j/e/stdout") == "[]"  # type: ignore[arg-type]
