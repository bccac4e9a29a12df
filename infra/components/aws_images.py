"""The stack's own images (agent, logstash), built and pushed to one region's ECR repositories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from infra.build_context import image_tag
from infra.images import BuiltImage

PLATFORM = "linux/amd64"


@dataclass(frozen=True)
class RegionImagesArgs:
    images: Sequence[BuiltImage]
    # Image name -> that region's ECR repository URL (RegionRegistry.repository_urls).
    repository_urls: Mapping[str, pulumi.Input[str]]
    registry_id: str
    stack: str
    # The region's provider: the ECR token is issued by, and only valid for, that region.
    provider: aws.Provider


class RegionImages(pulumi.ComponentResource):
    """Creates one ``docker.Image`` per image, built for linux/amd64 and pushed to the region's
    repository with a short-lived ECR token (a secret, fetched through the region's provider).

    Tags are ``<stack>-<build context digest>`` (``infra.build_context``, build args included):
    the repositories' tags are immutable, so an unchanged build keeps its tag and pushes nothing,
    and a changed one (a new file, or a new pinned base digest) gets a new tag. ``references``
    maps each image to ``<repository>@sha256:...``, which the job specs use, so a changed image
    shows as a job diff in ``pulumi preview``.
    """

    references: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: RegionImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:aws:RegionImages", name, None, opts)
        token = aws.ecr.get_authorization_token_output(
            registry_id=args.registry_id, opts=pulumi.InvokeOptions(provider=args.provider)
        )
        registry = docker.RegistryArgs(
            server=token.proxy_endpoint,
            username=token.user_name,
            password=pulumi.Output.secret(token.password),
        )
        self.references = {}
        for built in args.images:
            tag = image_tag(args.stack, built.context, built.dockerfile, PLATFORM, built.build_args)
            image = docker.Image(
                f"{name}-{built.name}",
                image_name=pulumi.Output.concat(args.repository_urls[built.name], ":", tag),
                build=docker.DockerBuildArgs(
                    context=str(built.context),
                    dockerfile=str(built.dockerfile),
                    platform=PLATFORM,
                    # None rather than {} without args, so existing images see no input change.
                    args=dict(built.build_args) or None,
                ),
                registry=registry,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.references[built.name] = image.repo_digest
        self.register_outputs({"references": self.references})
