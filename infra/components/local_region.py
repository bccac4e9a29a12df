"""The compute nodes of one simulated region: Bacalhau docker-in-docker containers."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from infra import capacity, nodeconfig
from infra.components.local_common import LocalContext, attach, container_labels, secret_env
from infra.components.local_registry import IN_NETWORK_REGISTRY
from infra.naming import node_name
from infra.versions import bacalhau_image

CONFIG_PATH = "/etc/bacalhau/config.yaml"
# The dind image's own entrypoint (starts the inner Docker daemon, then runs its arguments).
DIND_ENTRYPOINT = "/usr/local/bin/entrypoint.sh"
# What this backend's nodes define of nodeconfig.NODE_ENV_ALLOW_LIST: S3 keys for MinIO. The
# local search cluster needs no credentials, so the OpenSearch ones are not set.
NODE_ENV = frozenset({"LOGS_S3_ACCESS_KEY_ID", "LOGS_S3_SECRET_ACCESS_KEY"})
# The nodes' inner Docker daemons pull the stack's images from the plain-HTTP registry on the
# private stack network, so they must be told to trust exactly that one.
DAEMON_JSON = json.dumps({"insecure-registries": [IN_NETWORK_REGISTRY]})


@dataclass(frozen=True)
class LocalRegionArgs:
    context: LocalContext
    region: str
    nodes: int
    bacalhau_version: str
    orchestrator_nats_url: pulumi.Input[str]
    token: pulumi.Input[str]
    s3_access_key: pulumi.Input[str]
    s3_secret_key: pulumi.Input[str]


class LocalRegion(pulumi.ComponentResource):
    """Creates, per node: a state volume, a log volume, and a privileged Bacalhau dind container
    labelled ``region=<region>`` and ``env=<stack>`` that joins the orchestrator with the token.

    Node config allow-lists only the log and state directories for jobs to mount; S3 credentials
    reach jobs as node environment variables that jobs reference by name, never in job specs.
    """

    node_names: list[str]

    def __init__(
        self, name: str, args: LocalRegionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:local:Region", name, None, opts)
        context = args.context
        image = docker.RemoteImage(
            f"{name}-image",
            name=bacalhau_image(args.bacalhau_version, dind=True),
            keep_locally=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.node_names = []
        for index in range(1, args.nodes + 1):
            hostname = node_name(context.project, context.stack, args.region, index)
            self._node(f"{name}-node-{index}", hostname, args, image, self._config(args, hostname))
            self.node_names.append(hostname)
        self.register_outputs({"node_names": self.node_names})

    @staticmethod
    def _config(args: LocalRegionArgs, hostname: str) -> pulumi.Output[str]:
        # `host` lets operators scope an ops query to single nodes (python -m infra.ops --host).
        labels = {"region": args.region, "env": args.context.stack, "host": hostname}
        allocation = _allocated_capacity()

        def render(values: list[str]) -> str:
            config = nodeconfig.compute_config(
                orchestrators=[values[0]], token=values[1], labels=labels
            )
            config["Compute"]["AllocatedCapacity"] = allocation
            return nodeconfig.to_yaml(config)

        config = pulumi.Output.all(args.orchestrator_nats_url, args.token).apply(render)
        return pulumi.Output.secret(config)

    def _node(
        self,
        name: str,
        hostname: str,
        args: LocalRegionArgs,
        image: docker.RemoteImage,
        config: pulumi.Output[str],
    ) -> docker.Container:
        child = pulumi.ResourceOptions(parent=self)
        # Logs and shipper state live on volumes so a node restart loses neither.
        volumes = {
            path: docker.Volume(f"{name}-{suffix}", name=f"{hostname}-{suffix}", opts=child)
            for path, suffix in ((nodeconfig.LOG_DIR, "logs"), (nodeconfig.STATE_DIR, "state"))
        }
        return docker.Container(
            name,
            name=hostname,
            hostname=hostname,
            image=image.image_id,
            privileged=True,  # docker-in-docker needs it; the container has no published ports
            # The image's entrypoint starts dockerd, then bacalhau; first give the directories
            # jobs mount to the users the job containers run as.
            entrypoints=["/bin/sh", "-c", _prepare_then_serve()],
            uploads=[
                docker.ContainerUploadArgs(file=CONFIG_PATH, content=config),
                docker.ContainerUploadArgs(file="/etc/docker/daemon.json", content=DAEMON_JSON),
            ],
            envs=secret_env(
                LOGS_S3_ACCESS_KEY_ID=args.s3_access_key,
                LOGS_S3_SECRET_ACCESS_KEY=args.s3_secret_key,
                # Bacalhau's own S3 input source and publisher (batch queries over the archive)
                # use the node's standard AWS credential chain, here aimed at MinIO.
                AWS_ACCESS_KEY_ID=args.s3_access_key,
                AWS_SECRET_ACCESS_KEY=args.s3_secret_key,
                AWS_REGION="us-east-1",
            ),
            volumes=[
                docker.ContainerVolumeArgs(volume_name=volume.name, container_path=path)
                for path, volume in volumes.items()
            ],
            networks_advanced=attach(args.context, [hostname]),
            labels=container_labels(args.context, role="compute", region=args.region),
            restart="unless-stopped",
            opts=child,
        )


def _allocated_capacity() -> dict[str, str]:
    """A dind node detects the whole machine (runtime.NumCPU and total memory, as
    pkg/compute/capacity/system does) and offers 80% of it, the same machine every other node
    also claims: on a 2-core laptop that is 1.6 CPU, too little for Logstash, the generator, the
    compactor and a query, so queries would queue forever. Each node instead offers exactly what
    one node's jobs need together (the generator included, whether enabled or not), whatever
    the machine; Docker's CPU quotas then only slow jobs down on a small one."""
    return capacity.node_allocation(capacity.node_demand(generator_enabled=True))


def _prepare_then_serve() -> str:
    prepare = " && ".join(shlex.join(command) for command in nodeconfig.prepare_directories())
    return f"{prepare} && exec {DIND_ENTRYPOINT} bacalhau serve --config {CONFIG_PATH}"
