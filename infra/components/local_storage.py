"""MinIO with one archive bucket per simulated region, for the local stack."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker
import pulumi_random as random

from infra.components.local_common import (
    LocalContext,
    attach,
    container_labels,
    loopback_ports,
    secret_env,
)
from infra.naming import bucket_name, stack_prefix
from infra.versions import MINIO_IMAGE

S3_PORT = 9000
CONSOLE_PORT = 9001


@dataclass(frozen=True)
class LocalStorageArgs:
    context: LocalContext
    regions: Sequence[str]
    # Archives outlive `pulumi destroy` unless the stack opts in (archive.destroyWithStack).
    destroy_with_stack: bool = False
    s3_port: int = S3_PORT
    console_port: int = CONSOLE_PORT


class LocalStorage(pulumi.ComponentResource):
    """Creates: generated MinIO credentials, a data volume, the MinIO container, an AWS provider
    aimed at it, and one bucket per region.

    Without ``destroy_with_stack`` the volume and buckets are retained on delete, so
    ``pulumi destroy`` removes the container but never the archived logs.
    """

    endpoint: pulumi.Output[str]
    internal_endpoint: pulumi.Output[str]
    console_url: pulumi.Output[str]
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]
    buckets: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: LocalStorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:local:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        keep = pulumi.ResourceOptions(parent=self, retain_on_delete=not args.destroy_with_stack)
        context = args.context
        hostname = f"{stack_prefix(context.project, context.stack)}-minio"

        user = random.RandomPassword(f"{name}-access-key", length=20, special=False, opts=child)
        password = random.RandomPassword(f"{name}-secret-key", length=40, special=False, opts=child)
        image = docker.RemoteImage(f"{name}-image", name=MINIO_IMAGE, keep_locally=True, opts=child)
        volume = docker.Volume(f"{name}-data", name=f"{hostname}-data", opts=keep)
        container = docker.Container(
            f"{name}-container",
            name=hostname,
            hostname=hostname,
            image=image.image_id,
            command=["server", "/data", "--console-address", f":{CONSOLE_PORT}"],
            envs=secret_env(MINIO_ROOT_USER=user.result, MINIO_ROOT_PASSWORD=password.result),
            volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path="/data")],
            ports=loopback_ports({S3_PORT: args.s3_port, CONSOLE_PORT: args.console_port}),
            networks_advanced=attach(context, [hostname, "minio"]),
            labels=container_labels(context, role="storage"),
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "mc", "ready", "local"], interval="5s", timeout="5s", retries=24
            ),
            # Buckets are created through the S3 API right after, so wait until MinIO answers.
            wait=True,
            wait_timeout=120,
            restart="unless-stopped",
            opts=child,
        )
        # Derived from the container so whatever uses an endpoint waits until MinIO is healthy.
        running = container.id
        self.endpoint = running.apply(lambda _: f"http://127.0.0.1:{args.s3_port}")
        self.internal_endpoint = running.apply(lambda _: f"http://{hostname}:{S3_PORT}")
        self.console_url = running.apply(lambda _: f"http://127.0.0.1:{args.console_port}")
        self.access_key = pulumi.Output.secret(user.result)
        self.secret_key = pulumi.Output.secret(password.result)

        # The AWS provider speaks S3 to MinIO; everything AWS-specific is switched off.
        provider = aws.Provider(
            f"{name}-s3",
            region="us-east-1",
            access_key=self.access_key,
            secret_key=self.secret_key,
            s3_use_path_style=True,
            skip_credentials_validation=True,
            skip_requesting_account_id=True,
            skip_metadata_api_check=True,
            skip_region_validation=True,
            # A plain string, not an Output: a provider whose config is unknown at preview would
            # hide the buckets' diffs.
            endpoints=[aws.ProviderEndpointArgs(s3=f"http://127.0.0.1:{args.s3_port}")],
            opts=child,
        )
        self.buckets = {}
        for region in args.regions:
            bucket = aws.s3.Bucket(
                f"{name}-{region}",
                bucket=bucket_name(context.project, context.stack, region),
                force_destroy=args.destroy_with_stack,
                tags={"region": region, "env": context.stack},
                opts=pulumi.ResourceOptions.merge(
                    keep, pulumi.ResourceOptions(provider=provider, depends_on=[container])
                ),
            )
            self.buckets[region] = bucket.bucket
        self.register_outputs(
            {"endpoint": self.endpoint, "console_url": self.console_url, "buckets": self.buckets}
        )
