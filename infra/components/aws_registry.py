"""One region's ECR repositories for the images the stack builds (agent, logstash)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

IMAGES = ("agent", "logstash")


@dataclass(frozen=True)
class RegionRegistryArgs:
    # Repository names are "<prefix>/<image>", e.g. "bacalhau-logs-prod/agent".
    name_prefix: str
    force_delete: bool = False


class RegionRegistry(pulumi.ComponentResource):
    """Creates one ECR repository per image in ``IMAGES``: immutable tags (a tag always means the
    same digest), a vulnerability scan on every push, KMS encryption at rest, and a lifecycle
    policy that keeps the last 30 images.

    Nodes pull from their own region's registry, so an image pull never crosses regions.
    """

    def __init__(
        self, name: str, args: RegionRegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:aws:RegionRegistry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository_urls: dict[str, pulumi.Output[str]] = {}
        self.repository_arns: dict[str, pulumi.Output[str]] = {}
        for image in IMAGES:
            repository = aws.ecr.Repository(
                f"{name}-{image}",
                name=f"{args.name_prefix}/{image}",
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                encryption_configurations=[
                    aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")
                ],
                force_delete=args.force_delete,
                opts=child,
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{image}-lifecycle",
                repository=repository.name,
                policy=_KEEP_LAST_30,
                opts=child,
            )
            self.repository_urls[image] = repository.repository_url
            self.repository_arns[image] = repository.arn
        self.register_outputs({"repositoryUrls": self.repository_urls})


_KEEP_LAST_30 = """{
  "rules": [
    {
      "rulePriority": 1,
      "description": "keep the last 30 images",
      "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 30},
      "action": {"type": "expire"}
    }
  ]
}"""
