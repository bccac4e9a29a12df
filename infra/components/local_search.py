"""OpenSearch and OpenSearch Dashboards containers for the local stack."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from infra.components.local_common import (
    LocalContext,
    attach,
    container_labels,
    loopback_ports,
)
from infra.naming import stack_prefix
from infra.versions import DASHBOARDS_IMAGE, OPENSEARCH_IMAGE

OPENSEARCH_PORT = 9200
DASHBOARDS_PORT = 5601


@dataclass(frozen=True)
class LocalSearchArgs:
    context: LocalContext
    opensearch_port: int = OPENSEARCH_PORT
    dashboards_port: int = DASHBOARDS_PORT
    heap: str = "512m"


class LocalSearch(pulumi.ComponentResource):
    """Creates: a data volume, a single-node OpenSearch container and a Dashboards container.

    The security plugin is off here: both listen only on the stack's private network and on
    127.0.0.1, and the AWS backend is where authentication and TLS are enforced. Turning it on
    locally would mean trusting self-signed demo certificates in every pipeline, which is worse.
    """

    url: pulumi.Output[str]
    internal_url: pulumi.Output[str]
    dashboards_url: pulumi.Output[str]

    def __init__(
        self, name: str, args: LocalSearchArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:local:Search", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        context = args.context
        prefix = stack_prefix(context.project, context.stack)
        search_host = f"{prefix}-opensearch"
        dashboards_host = f"{prefix}-dashboards"

        search_image = docker.RemoteImage(
            f"{name}-opensearch-image", name=OPENSEARCH_IMAGE, keep_locally=True, opts=child
        )
        dashboards_image = docker.RemoteImage(
            f"{name}-dashboards-image", name=DASHBOARDS_IMAGE, keep_locally=True, opts=child
        )
        volume = docker.Volume(f"{name}-data", name=f"{search_host}-data", opts=child)
        search = docker.Container(
            f"{name}-opensearch",
            name=search_host,
            hostname=search_host,
            image=search_image.image_id,
            envs=[
                "discovery.type=single-node",
                "DISABLE_SECURITY_PLUGIN=true",
                "DISABLE_INSTALL_DEMO_CONFIG=true",
                f"OPENSEARCH_JAVA_OPTS=-Xms{args.heap} -Xmx{args.heap}",
            ],
            ulimits=[docker.ContainerUlimitArgs(name="nofile", soft=65536, hard=65536)],
            volumes=[
                docker.ContainerVolumeArgs(
                    volume_name=volume.name, container_path="/usr/share/opensearch/data"
                )
            ],
            ports=loopback_ports({OPENSEARCH_PORT: args.opensearch_port}),
            networks_advanced=attach(context, [search_host, "opensearch"]),
            labels=container_labels(context, role="search"),
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", "curl -fs http://localhost:9200/_cluster/health"],
                interval="10s",
                timeout="5s",
                retries=30,
            ),
            wait=True,
            wait_timeout=300,
            restart="unless-stopped",
            opts=child,
        )
        dashboards = docker.Container(
            f"{name}-dashboards",
            name=dashboards_host,
            hostname=dashboards_host,
            image=dashboards_image.image_id,
            envs=[
                f'OPENSEARCH_HOSTS=["http://{search_host}:{OPENSEARCH_PORT}"]',
                "DISABLE_SECURITY_DASHBOARDS_PLUGIN=true",
            ],
            ports=loopback_ports({DASHBOARDS_PORT: args.dashboards_port}),
            networks_advanced=attach(context, [dashboards_host, "dashboards"]),
            labels=container_labels(context, role="dashboards"),
            restart="unless-stopped",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[search]),
        )
        # Derived from the containers so whatever uses an URL waits for its container.
        self.url = search.id.apply(lambda _: f"http://127.0.0.1:{args.opensearch_port}")
        self.internal_url = search.id.apply(lambda _: f"http://{search_host}:{OPENSEARCH_PORT}")
        self.dashboards_url = dashboards.id.apply(
            lambda _: f"http://127.0.0.1:{args.dashboards_port}"
        )
        self.register_outputs(
            {
                "url": self.url,
                "internal_url": self.internal_url,
                "dashboards_url": self.dashboards_url,
            }
        )
