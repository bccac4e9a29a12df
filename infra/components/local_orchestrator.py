"""A self-hosted Bacalhau orchestrator container for the local stack."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from infra import nodeconfig
from infra.components.local_common import (
    LocalContext,
    attach,
    container_labels,
    loopback_ports,
)
from infra.naming import stack_prefix
from infra.versions import bacalhau_image

CONFIG_PATH = "/etc/bacalhau/config.yaml"


@dataclass(frozen=True)
class LocalOrchestratorArgs:
    context: LocalContext
    bacalhau_version: str
    api_port: int = nodeconfig.API_PORT
    nats_port: int = nodeconfig.NATS_PORT


class LocalOrchestrator(pulumi.ComponentResource):
    """Creates: a generated node token and API key, the pinned Bacalhau image, a volume for the
    orchestrator's data directory, and the orchestrator container.

    The API and NATS ports are published on 127.0.0.1; compute nodes reach NATS over the stack
    network at ``internal_nats_url``. The API answers only requests carrying ``api_key``. The
    job store (BoltDB under ``DataDir``) lives on the volume, so replacing the container (a new
    image or config) keeps every job instead of silently starting empty.
    """

    api_url: pulumi.Output[str]
    nats_url: pulumi.Output[str]
    internal_nats_url: pulumi.Output[str]
    token: pulumi.Output[str]
    api_key: pulumi.Output[str]

    def __init__(
        self, name: str, args: LocalOrchestratorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:local:Orchestrator", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        context = args.context
        hostname = f"{stack_prefix(context.project, context.stack)}-orchestrator"

        # Nodes join with this token; generated so no literal ever sits in code or stack files.
        token = random.RandomPassword(f"{name}-token", length=40, special=False, opts=child)
        # Letters and digits only: a key with dots could be taken for a JWT by Bacalhau.
        api_key = random.RandomPassword(f"{name}-api-key", length=40, special=False, opts=child)
        data = docker.Volume(f"{name}-data", name=f"{hostname}-data", opts=child)
        image = docker.RemoteImage(
            f"{name}-image",
            name=bacalhau_image(args.bacalhau_version),
            keep_locally=True,
            opts=child,
        )
        config = pulumi.Output.all(token.result, api_key.result).apply(
            lambda values: nodeconfig.to_yaml(
                nodeconfig.orchestrator_config(
                    token=values[0],
                    api_key=values[1],
                    labels={"role": "orchestrator", "env": context.stack},
                )
            )
        )
        self.container = docker.Container(
            f"{name}-container",
            name=hostname,
            hostname=hostname,
            image=image.image_id,
            command=["serve", "--config", CONFIG_PATH],
            uploads=[
                docker.ContainerUploadArgs(file=CONFIG_PATH, content=pulumi.Output.secret(config))
            ],
            ports=loopback_ports(
                {nodeconfig.API_PORT: args.api_port, nodeconfig.NATS_PORT: args.nats_port}
            ),
            volumes=[
                docker.ContainerVolumeArgs(
                    volume_name=data.name, container_path=nodeconfig.BACALHAU_DATA_DIR
                )
            ],
            networks_advanced=attach(context, [hostname, "orchestrator"]),
            labels=container_labels(context, role="orchestrator"),
            restart="unless-stopped",
            opts=child,
        )
        # Derived from the container so whatever uses an URL waits for the container to exist.
        running = self.container.id
        self.api_url = running.apply(lambda _: f"http://127.0.0.1:{args.api_port}")
        self.nats_url = running.apply(lambda _: f"nats://127.0.0.1:{args.nats_port}")
        self.internal_nats_url = running.apply(
            lambda _: f"nats://{hostname}:{nodeconfig.NATS_PORT}"
        )
        self.token = pulumi.Output.secret(token.result)
        self.api_key = pulumi.Output.secret(api_key.result)
        self.register_outputs(
            {
                "api_url": self.api_url,
                "nats_url": self.nats_url,
                "internal_nats_url": self.internal_nats_url,
            }
        )
