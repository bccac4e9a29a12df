"""Settings that only the AWS backend reads (``bacalhau-logs:aws``).

Every field has a secure, mocks-friendly default, so an AWS stack needs no ``aws`` section at all.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Self

from pydantic import Field, field_validator, model_validator

from infra.config_model import StrictModel

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_SEARCH_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+\.search$")
_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")


class SearchPlacement(StrEnum):
    HOME = "home"
    PER_REGION = "per-region"


class ArchiveEncryption(StrEnum):
    # A customer-managed key per region (rotated yearly) vs. S3-managed keys.
    SSE_KMS = "sse-kms"
    SSE_S3 = "sse-s3"


class OpenSearchSettings(StrictModel):
    placement: SearchPlacement = SearchPlacement.HOME
    instance_type: str = "t3.small.search"
    instance_count: int = Field(default=1, ge=1, le=10)
    volume_gb: int = Field(default=20, ge=10, le=1024)
    metrics_retention_days: int = Field(default=30, ge=1)

    @field_validator("instance_type")
    @classmethod
    def _search_type(cls, value: str) -> str:
        if not _SEARCH_INSTANCE_TYPE.match(value):
            raise ValueError("must be an OpenSearch Service instance type, like 't3.small.search'")
        return value

    @model_validator(mode="after")
    def _zone_awareness_fits(self) -> Self:
        # Zone awareness spreads nodes evenly over 2 or 3 AZs, so the count must divide.
        count = self.instance_count
        if count > 1 and count % 2 and count % 3:
            raise ValueError(
                f"instanceCount: more than one node must be a multiple of 2 or 3 (got {count})"
            )
        return self

    @property
    def availability_zone_count(self) -> int:
        """How many AZs the domain spans: 1 for a single node, else 2 (even counts) or 3."""
        if self.instance_count == 1:
            return 1
        return 2 if self.instance_count % 2 == 0 else 3


class AmiSettings(StrictModel):
    """Which image compute and orchestrator nodes boot; looked up at deploy time, never an id."""

    # Amazon Linux 2023: ships the AWS CLI, SSM agent, Docker and the ECR credential helper.
    owner: str = "amazon"
    name_pattern: str = "al2023-ami-2023.*-x86_64"


class AwsSettings(StrictModel):
    home_region: str | None = None
    opensearch: OpenSearchSettings = OpenSearchSettings()
    archive_encryption: ArchiveEncryption = ArchiveEncryption.SSE_KMS
    ami: AmiSettings = AmiSettings()
    root_volume_gb: int = Field(default=30, ge=8, le=1024)
    orchestrator_instance_type: str = "t3.small"
    # Optional extra pin: the sha256 of the Bacalhau linux/amd64 tarball. Without it nodes verify
    # the release's published signature file with Bacalhau's release key (infra/versions.py).
    bacalhau_sha256: str | None = None
    # Who may call the self-hosted orchestrator's API (port 1234) directly; empty means only
    # through an SSM port forward. The internet as a whole is never allowed.
    api_allowed_cidrs: tuple[str, ...] = ()
    # Whether `pulumi up` registers the Bacalhau jobs. It calls the orchestrator's API from where
    # it runs, so a self-hosted orchestrator then needs that address in apiAllowedCidrs; false
    # leaves the jobs to `bacalhau job run` (e.g. over an SSM port forward).
    register_jobs: bool = True
    # IAM principals (besides the compute nodes' roles) that OpenSearch lets in, e.g. the CI
    # role that imports dashboards; the deploying identity is always added.
    search_admin_arns: tuple[str, ...] = ()

    @field_validator("orchestrator_instance_type")
    @classmethod
    def _ec2_type(cls, value: str) -> str:
        if not _INSTANCE_TYPE.match(value):
            raise ValueError("must be an EC2 instance type, like 't3.small'")
        return value

    @field_validator("bacalhau_sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.match(value):
            raise ValueError("must be 64 lowercase hex digits (sha256sum of the release tarball)")
        return value

    @field_validator("api_allowed_cidrs")
    @classmethod
    def _not_the_internet(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                network = ipaddress.ip_network(cidr)
            except ValueError:
                raise ValueError(f"'{cidr}' is not a CIDR like 203.0.113.7/32") from None
            if network.prefixlen < 16:
                raise ValueError(f"'{cidr}' is too wide; allow /16 or narrower, never the internet")
        return value

    @field_validator("search_admin_arns")
    @classmethod
    def _iam_arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [arn for arn in value if not _ARN.match(arn)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not IAM role or user ARNs")
        return value
