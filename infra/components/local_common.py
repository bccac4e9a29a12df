"""What every container of the local (Docker) backend shares: labels, loopback ports, networking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

# Published ports bind the loopback address only: the local stack is never reachable from the LAN.
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class LocalContext:
    """What a local component needs to know about the stack it is part of."""

    project: str
    stack: str
    network_name: pulumi.Input[str]


def loopback_ports(ports: Mapping[int, int]) -> list[docker.ContainerPortArgs]:
    """Publish ``{container_port: host_port}`` on 127.0.0.1 only."""
    return [
        docker.ContainerPortArgs(internal=internal, external=external, ip=LOOPBACK)
        for internal, external in sorted(ports.items())
    ]


def container_labels(context: LocalContext, **extra: str) -> list[docker.ContainerLabelArgs]:
    labels = {"project": context.project, "env": context.stack, **extra}
    return [docker.ContainerLabelArgs(label=key, value=value) for key, value in labels.items()]


def attach(
    context: LocalContext, aliases: Sequence[str]
) -> list[docker.ContainerNetworksAdvancedArgs]:
    return [docker.ContainerNetworksAdvancedArgs(name=context.network_name, aliases=list(aliases))]


def secret_env(**values: pulumi.Input[str]) -> pulumi.Output[list[str]]:
    """Container ``KEY=value`` entries, explicitly secret so they stay encrypted in state."""
    entries: pulumi.Output[list[str]] = pulumi.Output.all(
        *(pulumi.Output.concat(key, "=", value) for key, value in values.items())
    )
    return pulumi.Output.secret(entries)
