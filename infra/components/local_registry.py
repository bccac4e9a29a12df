"""A private image registry on the stack network, and the stack's own images pushed to it."""

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
from infra.images import BuiltImage
from infra.naming import stack_prefix
from infra.versions import REGISTRY_IMAGE

REGISTRY_PORT = 5000
# How compute nodes (inside the stack network) address the registry; their Docker daemons are
# told to trust it (see local_region.DAEMON_JSON).
IN_NETWORK_REGISTRY = f"registry:{REGISTRY_PORT}"


@dataclass(frozen=True)
class LocalRegistryArgs:
    context: LocalContext
    images: tuple[BuiltImage, ...]
    tag: str
    port: int = REGISTRY_PORT


def in_network_reference(repo_digest: str, host_registry: str) -> str:
    """``127.0.0.1:5000/x@sha256:..`` as the nodes pull it: ``registry:5000/x@sha256:..``."""
    if not repo_digest.startswith(f"{host_registry}/") or "@sha256:" not in repo_digest:
        raise ValueError(f"expected a digest reference in {host_registry}, got '{repo_digest}'")
    return IN_NETWORK_REGISTRY + repo_digest.removeprefix(host_registry)


class LocalRegistry(pulumi.ComponentResource):
    """Creates: the registry container (published on 127.0.0.1 for pushes from this machine) and
    one built-and-pushed image per ``BuiltImage``.

    ``references`` maps each image name to the immutable digest reference nodes pull, so a
    changed image changes every job spec that runs it, and ``pulumi preview`` shows it.
    """

    references: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: LocalRegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:local:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        context = args.context
        hostname = f"{stack_prefix(context.project, context.stack)}-registry"
        host_registry = f"127.0.0.1:{args.port}"

        image = docker.RemoteImage(
            f"{name}-image", name=REGISTRY_IMAGE, keep_locally=True, opts=child
        )
        registry = docker.Container(
            f"{name}-container",
            name=hostname,
            hostname=hostname,
            image=image.image_id,
            ports=loopback_ports({REGISTRY_PORT: args.port}),
            networks_advanced=attach(context, [hostname, "registry"]),
            labels=container_labels(context, role="registry"),
            restart="unless-stopped",
            opts=child,
        )
        self.references = {}
        for built in args.images:
            pushed = docker.Image(
                f"{name}-{built.name}",
                image_name=f"{host_registry}/{context.project}/{built.name}:{args.tag}",
                build=docker.DockerBuildArgs(
                    context=str(built.context),
                    dockerfile=str(built.dockerfile),
                    platform="linux/amd64",
                    # None rather than {} without args, so existing images see no input change.
                    args=dict(built.build_args) or None,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[registry]),
            )
            self.references[built.name] = pushed.repo_digest.apply(
                lambda digest: in_network_reference(digest, host_registry)
            )
        self.register_outputs({"references": self.references})
