"""Compute nodes get the stack's ECR images themselves: the node's pull script (run by real bash
against stand-in `aws` and `docker` commands) and the stack's wait for every node to have them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import cloudinit
from infra.components.aws_image_pull import (
    ImagePullError,
    NodeImagePullProvider,
    PullRequest,
    pull_on_nodes,
)

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
IMAGES = cloudinit.ImageList(
    name="/bacalhau-logs-prod/us-east-1/images", region="us-east-1", registry=REGISTRY
)
AGENT = f"{REGISTRY}/bacalhau-logs-prod/agent@sha256:{'a' * 64}"
LOGSTASH = f"{REGISTRY}/bacalhau-logs-prod/logstash@sha256:{'b' * 64}"


def user_data_files() -> dict[str, dict[str, Any]]:
    document = cloudinit.compute_user_data(
        release=cloudinit.Release(version="v1.9.3"),
        node_config_yaml="{}\n",
        images=IMAGES,
        ca=None,
    )
    return {f["path"]: f for f in yaml.safe_load(document)["write_files"]}


def test_nodes_pull_before_bacalhau_starts_and_then_every_five_minutes() -> None:
    """v1.9.3 pulls nothing for an image it already has for the node's platform (PullImage and
    ImageDistribution in pkg/docker/docker.go inspect the local image first), so Bacalhau must
    start only once the images are there."""
    files = user_data_files()
    unit = files["/etc/systemd/system/bacalhau.service"]["content"]
    assert (
        f"After=network-online.target docker.service {cloudinit.PULL_IMAGES_UNIT}.service" in unit
    )
    assert f"Wants={cloudinit.PULL_IMAGES_UNIT}.service" in unit
    service = files[f"/etc/systemd/system/{cloudinit.PULL_IMAGES_UNIT}.service"]["content"]
    assert "Type=oneshot" in service
    assert f"ExecStart={cloudinit.PULL_IMAGES_SCRIPT}" in service
    assert "Requires=docker.service" in service
    timer = files[f"/etc/systemd/system/{cloudinit.PULL_IMAGES_UNIT}.timer"]["content"]
    assert "OnUnitActiveSec=5min" in timer
    assert files[cloudinit.PULL_IMAGES_SCRIPT]["permissions"] == "0755"
    helper = yaml.safe_load(files["/root/.docker/config.json"]["content"])
    assert helper == {"credHelpers": {REGISTRY: "ecr-login"}}
    commands = yaml.safe_load(
        cloudinit.compute_user_data(
            release=cloudinit.Release(version="v1.9.3"),
            node_config_yaml="{}\n",
            images=IMAGES,
            ca=None,
        )
    )["runcmd"]
    start_pull = ["systemctl", "start", f"{cloudinit.PULL_IMAGES_UNIT}.service"]
    assert commands.index(start_pull) < commands.index(
        ["systemctl", "enable", "--now", "bacalhau.service"]
    )


STUB_AWS = """#!/bin/bash
# Fails while $STATE/aws-failures counts down, then prints the image list.
echo "aws $*" >> "$STATE/calls"
left=$(cat "$STATE/aws-failures" 2>/dev/null || echo 0)
if [ "$left" -gt 0 ]; then
  echo $((left - 1)) > "$STATE/aws-failures"
  echo "ParameterNotFound" >&2
  exit 254
fi
cat "$STATE/list"
"""
STUB_DOCKER = """#!/bin/bash
# `image inspect` succeeds for images listed in $STATE/present; `pull` fails for $STATE/broken.
echo "docker $* config=$DOCKER_CONFIG" >> "$STATE/calls"
if [ "$1 $2" = "image inspect" ]; then grep -qxF "$3" "$STATE/present"; exit $?; fi
if [ "$1" = "pull" ]; then ! grep -qxF "$3" "$STATE/broken"; exit $?; fi
exit 2
"""


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Path]:
    """A PATH with stand-ins for aws, docker and sleep, and the pull script to run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("aws", STUB_AWS), ("docker", STUB_DOCKER), ("sleep", "#!/bin/sh\n")):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    script = tmp_path / "pull-images"
    script.write_text(user_data_files()[cloudinit.PULL_IMAGES_SCRIPT]["content"])
    script.chmod(0o755)
    for name in ("present", "broken", "calls"):
        (tmp_path / name).write_text("")
    yield tmp_path


def run_pull(
    node: Path, listed: list[str], aws_failures: int = 0
) -> subprocess.CompletedProcess[str]:
    (node / "list").write_text(" ".join(listed) + "\n")
    (node / "aws-failures").write_text(str(aws_failures))
    env = {**os.environ, "PATH": f"{node / 'bin'}:{os.environ['PATH']}", "STATE": str(node)}
    return subprocess.run(
        [str(node / "pull-images")], env=env, capture_output=True, text=True, check=False
    )


def calls(node: Path) -> list[str]:
    return [line for line in (node / "calls").read_text().splitlines() if line.startswith("docker")]


def test_pulls_only_missing_images_with_the_cli_credentials(node: Path) -> None:
    (node / "present").write_text(AGENT + "\n")
    result = run_pull(node, [AGENT, LOGSTASH], aws_failures=2)
    assert result.returncode == 0, result.stderr
    assert calls(node) == [
        f"docker image inspect {AGENT} config=/root/.docker",
        f"docker image inspect {LOGSTASH} config=/root/.docker",
        f"docker pull --quiet {LOGSTASH} config=/root/.docker",
    ]


def test_refuses_images_from_elsewhere_or_by_tag(node: Path) -> None:
    elsewhere = f"docker.io/library/busybox@sha256:{'c' * 64}"
    by_tag = f"{REGISTRY}/bacalhau-logs-prod/agent:latest"
    result = run_pull(node, [elsewhere, by_tag, AGENT])
    assert result.returncode == 1
    assert f"skipping {elsewhere}" in result.stderr
    assert f"skipping {by_tag}" in result.stderr
    assert calls(node)[-1] == f"docker pull --quiet {AGENT} config=/root/.docker"


def test_a_failed_pull_fails_the_run_but_not_the_other_images(node: Path) -> None:
    (node / "broken").write_text(AGENT + "\n")
    result = run_pull(node, [AGENT, LOGSTASH])
    assert result.returncode == 1
    assert f"docker pull --quiet {LOGSTASH} config=/root/.docker" in calls(node)


def test_gives_up_when_the_list_never_appears(node: Path) -> None:
    result = run_pull(node, [AGENT], aws_failures=1000)
    assert result.returncode == 1
    assert f"no image list in {IMAGES.name}" in result.stderr
    assert calls(node) == []


class FakeSsm:
    """SSM as the pull needs it: instances come online, a command runs, invocations finish."""

    def __init__(self, instances: dict[str, list[str]], online_after: int = 0) -> None:
        self.outcomes = instances  # instance -> statuses returned by successive polls
        self.online_after = online_after
        self.sent: list[dict[str, Any]] = []

    def describe_instance_information(self, Filters: list[dict[str, Any]]) -> dict[str, Any]:
        ids = Filters[0]["Values"]
        self.online_after -= 1
        status = "Online" if self.online_after < 0 else "ConnectionLost"
        return {"InstanceInformationList": [{"InstanceId": i, "PingStatus": status} for i in ids]}

    def send_command(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        return {"Command": {"CommandId": "cmd-1"}}

    def get_command_invocation(self, CommandId: str, InstanceId: str) -> dict[str, Any]:
        statuses = self.outcomes[InstanceId]
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        if status == "missing":
            raise RuntimeError("An error occurred (InvocationDoesNotExist) when calling ...")
        return {"Status": status, "StandardErrorContent": f"pull failed on {InstanceId}"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


REQUEST = PullRequest(region="us-east-1", instance_ids=("i-1", "i-2"), command="/pull")


def test_pull_runs_the_nodes_script_everywhere_and_waits_for_all() -> None:
    ssm = FakeSsm({"i-1": ["missing", "InProgress", "Success"], "i-2": ["Success"]}, 2)
    clock = Clock()
    pull_on_nodes(REQUEST, ssm, sleep=clock.sleep, clock=clock)
    (sent,) = ssm.sent
    assert sent["InstanceIds"] == ["i-1", "i-2"]
    assert sent["DocumentName"] == "AWS-RunShellScript"
    assert sent["Parameters"] == {"commands": ["/pull"]}
    assert clock.now > 0  # it waited for the nodes to come online and for i-1 to finish


def test_a_node_that_cannot_pull_fails_the_deployment_with_its_error() -> None:
    ssm = FakeSsm({"i-1": ["Success"], "i-2": ["Failed"]})
    clock = Clock()
    with pytest.raises(ImagePullError) as caught:
        pull_on_nodes(REQUEST, ssm, sleep=clock.sleep, clock=clock)
    message = str(caught.value)
    assert "image pull failed on 1 of 2 nodes in us-east-1 (SSM command cmd-1)" in message
    assert "i-2: Failed: pull failed on i-2" in message


def test_nodes_that_never_come_online_are_named() -> None:
    ssm = FakeSsm({"i-1": ["Success"], "i-2": ["Success"]}, online_after=10**6)
    clock = Clock()
    with pytest.raises(ImagePullError, match="nodes i-1, i-2 in us-east-1 did not come online"):
        pull_on_nodes(REQUEST, ssm, sleep=clock.sleep, clock=clock)
    assert ssm.sent == []


def test_other_ssm_errors_are_not_swallowed() -> None:
    class Broken(FakeSsm):
        def get_command_invocation(self, CommandId: str, InstanceId: str) -> dict[str, Any]:
            raise RuntimeError("AccessDenied")

    clock = Clock()
    with pytest.raises(RuntimeError, match="AccessDenied"):
        pull_on_nodes(REQUEST, Broken({}), sleep=clock.sleep, clock=clock)


def test_a_change_of_images_or_nodes_pulls_again() -> None:
    provider = NodeImagePullProvider()
    olds = {"region": "r", "instance_ids": ["i-1"], "references": {"agent": AGENT}, "command": "c"}
    assert not provider.diff("id", olds, dict(olds)).changes
    assert provider.diff("id", olds, {**olds, "references": {"agent": LOGSTASH}}).changes
    assert provider.diff("id", olds, {**olds, "instance_ids": ["i-1", "i-2"]}).changes
