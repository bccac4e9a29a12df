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

from infra.ops.outputs import OutputsError, StackOutputs, load_outputs, local_backend_env
from infra.ops.published import read_result_file, result_location


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

    def select_stack(stack_name: str, work_dir: str, opts: object) -> Stack:
        selected.update(stack=stack_name, work_dir=work_dir)
        return Stack()

    fake = types.ModuleType("pulumi.automation")
    fake.select_stack = select_stack  # type: ignore[attr-defined]
    fake.LocalWorkspaceOptions = types.SimpleNamespace  # type: ignore[attr-defined]
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
    fake.LocalWorkspaceOptions = types.SimpleNamespace  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pulumi.automation", fake)
    monkeypatch.setattr(pulumi, "automation", fake, raising=False)
    with pytest.raises(OutputsError, match="pass --outputs FILE"):
        load_outputs(None, "dev")


class _Bucket:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_object(self, Bucket: str, Key: str) -> dict[str, io.BytesIO]:
        return {"Body": io.BytesIO(self.objects[Key])}


def test_published_result_files_plain_and_archived():
    """pkg/publisher/s3/publisher.go (v1.9.3): Encoding plain stores <Key>/<file>; otherwise
    one <Key>.tar.gz of the result directory."""
    plain = {"Type": "s3", "Params": {"Bucket": "b", "Key": "ops-results/j/e/"}}
    assert result_location(plain, "stdout") == ("b", "ops-results/j/e/stdout")
    assert result_location(plain, "stderr") == ("b", "ops-results/j/e/stderr")
    assert result_location({"Type": "local", "Params": {"URL": "x"}}, "stdout") is None
    assert result_location({"Type": "", "Params": {}}, "stdout") is None
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in (("outputs/stdout", b"a job output"), ("stdout", b'{"n": 1}\n')):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    bucket = _Bucket({"r.tar.gz": archive.getvalue(), "ops-results/j/e/stdout": b"[]"})
    assert read_result_file(bucket, "b", "r.tar.gz", "stdout") == '{"n": 1}\n'  # type: ignore[arg-type]
    assert read_result_file(bucket, "b", "ops-results/j/e/stdout", "stdout") == "[]"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url", ["127.0.0.1:1234", "ftp://o:1234", "http://", "https:///x", "javascript:alert(1)"]
)
def test_urls_that_are_not_http_are_named(url: str):
    outputs = StackOutputs("dev", {"orchestratorApiUrl": url, "s3Endpoint": url})
    with pytest.raises(OutputsError, match=r"'orchestratorApiUrl': .* is not an http\(s\) URL"):
        _ = outputs.api_url
    with pytest.raises(OutputsError, match="'s3Endpoint'"):
        _ = outputs.s3_endpoint


def test_minio_keys_only_when_the_outputs_hold_them_in_clear():
    clear = StackOutputs("dev", {"minioAccessKey": "a", "minioSecretKey": "s"})
    assert clear.s3_keys() == ("a", "s")
    hidden = StackOutputs("dev", {"minioAccessKey": "a", "minioSecretKey": "[secret]"})
    assert hidden.s3_keys() is None
    assert StackOutputs("dev", {}).s3_keys() is None


def test_the_local_stack_backend_and_passphrase_are_found(tmp_path: Path):
    """What scripts/dev exports (PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE_FILE), for a stack
    that lives in the local file backend, unless the environment says otherwise."""
    state = tmp_path / ".pulumi-state"
    (state / ".pulumi" / "stacks" / "bacalhau-logs").mkdir(parents=True)
    (state / ".pulumi" / "stacks" / "bacalhau-logs" / "dev.json").write_text("{}")
    (state / "passphrase").write_text("p")
    assert local_backend_env({}, "dev", state) == {
        "PULUMI_BACKEND_URL": state.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE_FILE": str(state / "passphrase"),
    }
    assert local_backend_env({}, "prod", state) == {}
    told = {"PULUMI_BACKEND_URL": "s3://b", "PULUMI_CONFIG_PASSPHRASE": "x"}
    assert local_backend_env(told, "dev", state) == {}


def test_the_stacks_generated_api_key_is_used_only_when_in_clear():
    """The self-hosted API refuses requests without the key (nodeconfig.api_auth); infra.ops
    takes it from the outputs when they hold it in clear, never the "[secret]" placeholder."""
    assert StackOutputs("dev", {"orchestratorApiKey": "k" * 40}).api_key == "k" * 40
    assert StackOutputs("dev", {"orchestratorApiKey": "[secret]"}).api_key is None
    assert StackOutputs("dev", {}).api_key is None


def test_the_orchestrator_certificate_source_is_read_and_checked():
    outputs = StackOutputs(
        "prod",
        {
            "orchestratorCa": {
                "parameter": "/bacalhau-logs-prod/orchestrator-ca",
                "region": "us-east-1",
            }
        },
    )
    assert outputs.ca_source is not None
    assert outputs.ca_source.parameter == "/bacalhau-logs-prod/orchestrator-ca"
    assert StackOutputs("dev", {}).ca_source is None
    with pytest.raises(OutputsError, match="orchestratorCa"):
        _ = StackOutputs("prod", {"orchestratorCa": "us-east-1"}).ca_source
