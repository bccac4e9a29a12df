"""Have every compute node of a region pull the stack's images before jobs that use them change.

A v1.9.3 node bids on a Docker job only after inspecting its image: locally first, else in the
registry without credentials (ImagePlatformBidStrategy, then ImageDistribution in
pkg/docker/docker.go), which fails for a private ECR image and fails the execution. So a job
update naming a new digest must not reach the orchestrator before every node has that image.
``NodeImagePull`` runs the nodes' own pull script (``infra.cloudinit.PULL_IMAGES_SCRIPT``) on all
of them through SSM Run Command and waits for every one to succeed; its ``references`` output is
what the jobs use, so they update only afterwards. Nodes created in the same deployment pull at
boot before Bacalhau starts, and the command waits for them to come online.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic

ONLINE_WAIT_SECONDS = 900.0
COMMAND_TIMEOUT_SECONDS = 900
_POLL_SECONDS = 10.0
_TERMINAL = frozenset({"Success", "Failed", "Cancelled", "TimedOut", "Cancelling"})
_ERROR_TAIL = 400


class ImagePullError(RuntimeError):
    """Some node could not pull the images; the message names each node and its error."""


@dataclass(frozen=True)
class PullRequest:
    region: str
    instance_ids: tuple[str, ...]
    command: str

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> PullRequest:
        return cls(
            region=str(props["region"]),
            instance_ids=tuple(sorted(str(i) for i in props["instance_ids"])),
            command=str(props["command"]),
        )


def pull_on_nodes(
    request: PullRequest,
    ssm: Any,
    *,
    online_wait: float = ONLINE_WAIT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``request.command`` on every instance and return once all succeeded, or raise."""
    if not request.instance_ids:
        return
    _wait_online(request, ssm, online_wait, sleep, clock)
    command_id = ssm.send_command(
        InstanceIds=list(request.instance_ids),
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": [request.command]},
        TimeoutSeconds=COMMAND_TIMEOUT_SECONDS,
        Comment="bacalhau-logs: pull the stack's job images",
    )["Command"]["CommandId"]
    results = _wait_for_command(request, ssm, command_id, sleep, clock)
    failed = {i: r for i, r in results.items() if r["Status"] != "Success"}
    if failed:
        reasons = "; ".join(
            f"{instance}: {r['Status']}: {str(r.get('StandardErrorContent', ''))[-_ERROR_TAIL:]}"
            for instance, r in sorted(failed.items())
        )
        raise ImagePullError(
            f"image pull failed on {len(failed)} of {len(results)} nodes in {request.region} "
            f"(SSM command {command_id}): {reasons}"
        )


def _wait_online(
    request: PullRequest,
    ssm: Any,
    wait: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    # New instances register with SSM a minute or two after boot.
    deadline = clock() + wait
    while True:
        described = ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": list(request.instance_ids)}]
        )["InstanceInformationList"]
        online = {i["InstanceId"] for i in described if i.get("PingStatus") == "Online"}
        missing = sorted(set(request.instance_ids) - online)
        if not missing:
            return
        if clock() + _POLL_SECONDS > deadline:
            raise ImagePullError(
                f"nodes {', '.join(missing)} in {request.region} did not come online in SSM "
                f"within {wait:.0f}s; check that they booted (their SSM agent and role)"
            )
        sleep(_POLL_SECONDS)


def _wait_for_command(
    request: PullRequest,
    ssm: Any,
    command_id: str,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> dict[str, Mapping[str, Any]]:
    deadline = clock() + COMMAND_TIMEOUT_SECONDS + 60
    results: dict[str, Mapping[str, Any]] = {}
    while True:
        for instance in request.instance_ids:
            if instance in results:
                continue
            try:
                invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance)
            except Exception as error:  # InvocationDoesNotExist right after sending: retry
                if "InvocationDoesNotExist" not in type(error).__name__ + str(error):
                    raise
                continue
            if invocation["Status"] in _TERMINAL:
                results[instance] = invocation
        if len(results) == len(request.instance_ids):
            return results
        if clock() + _POLL_SECONDS > deadline:
            waiting = sorted(set(request.instance_ids) - set(results))
            raise ImagePullError(
                f"SSM command {command_id} still running on {', '.join(waiting)} in "
                f"{request.region} after {COMMAND_TIMEOUT_SECONDS}s"
            )
        sleep(_POLL_SECONDS)


class NodeImagePullProvider(pulumi.dynamic.ResourceProvider):
    """Pulls on create and whenever the images or the instances change; deleting does nothing
    (images stay on the nodes until the nodes go)."""

    def _pull(self, props: dict[str, Any]) -> dict[str, Any]:
        import boto3  # deferred: only AWS stacks run it, in the provider process

        request = PullRequest.from_props(props)
        pull_on_nodes(request, boto3.client("ssm", region_name=request.region))
        return dict(props)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_=f"images-{props['region']}", outs=self._pull(props))

    def diff(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.DiffResult:
        changed = [
            k for k in ("references", "instance_ids", "command") if olds.get(k) != news.get(k)
        ]
        return pulumi.dynamic.DiffResult(
            changes=bool(changed), replaces=[], delete_before_replace=False
        )

    def update(
        self, _id: str, _olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=self._pull(news))


@dataclass(frozen=True)
class NodeImagePullArgs:
    region: str
    instance_ids: Sequence[pulumi.Input[str]]
    # Image name -> reference by digest; passed through to ``references`` once pulled.
    references: Mapping[str, pulumi.Input[str]]
    command: str


class NodeImagePull(pulumi.dynamic.Resource, module="aws", name="NodeImagePull"):
    """The region's images, present on every one of its compute nodes."""

    references: pulumi.Output[dict[str, str]]

    def __init__(
        self, name: str, args: NodeImagePullArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            "region": args.region,
            "instance_ids": list(args.instance_ids),
            "references": dict(args.references),
            "command": args.command,
        }
        super().__init__(NodeImagePullProvider(), name, props, opts)
