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

# Every pattern is used with fullmatch: "$" would also accept a trailing newline.
_SHA256 = re.compile(r"[0-9a-f]{64}")
_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
_SEARCH_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+\.search")
_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+")
# An AMI owner: an account id or an alias such as "amazon"; a name pattern: no whitespace.
_AMI_OWNER = re.compile(r"\d{12}|[a-z][a-z0-9-]*")
_AMI_NAME_PATTERN = re.compile(r"[\w.*?()\[\]/@' -]{3,128}")

# The commercial ("aws" partition) regions, from botocore 1.44.8's data/endpoints.json. The
# stack builds endpoints as https://s3.<region>.amazonaws.com, which only this partition uses.
AWS_REGIONS = frozenset(
    {
        "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2",
        "ap-northeast-3", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
        "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
        "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1",
        "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1",
        "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-1",
        "us-west-2",
    }
)  # fmt: skip


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
        if not _SEARCH_INSTANCE_TYPE.fullmatch(value):
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

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not _AMI_OWNER.fullmatch(value):
            raise ValueError("must be an AWS account id or an owner alias like 'amazon'")
        return value

    @field_validator("name_pattern")
    @classmethod
    def _name_pattern(cls, value: str) -> str:
        if not _AMI_NAME_PATTERN.fullmatch(value):
            raise ValueError(
                "must be an AMI name filter of 3-128 characters (letters, digits, ()[]./'@-_ "
                "and the wildcards * ?), like 'al2023-ami-2023.*-x86_64'"
            )
        return value


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

    @field_validator("home_region")
    @classmethod
    def _real_region(cls, value: str | None) -> str | None:
        if value is not None and value not in AWS_REGIONS:
            raise ValueError("must be an AWS region name, like 'us-east-1'")
        return value

    @field_validator("orchestrator_instance_type")
    @classmethod
    def _ec2_type(cls, value: str) -> str:
        if not _INSTANCE_TYPE.fullmatch(value):
            raise ValueError("must be an EC2 instance type, like 't3.small'")
        return value

    @field_validator("bacalhau_sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.fullmatch(value):
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
        bad = [arn for arn in value if not _ARN.fullmatch(arn)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not IAM role or user ARNs")
        return value


# The VPC is split into subnets four bits smaller (one public, one private per AZ:
# infra/components/aws_network.py subnet_cidrs, AZ_COUNT). AWS allows VPCs and subnets from /16
# to /28 and keeps 5 addresses of every subnet, so a VPC may be /16 to /24.
SUBNET_PREFIX_DIFF = 4
NODE_SUBNETS = 2
_AWS_SUBNET_RESERVED = 5
_VPC_PREFIXES = range(16, 28 - SUBNET_PREFIX_DIFF + 1)
# RFC 1918 private ranges.
_PRIVATE = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
# Docker's default bridge on every node: a VPC overlapping it makes those addresses unreachable
# from the node, whose routing sends them to docker0.
DOCKER_BRIDGE = ipaddress.IPv4Network("172.17.0.0/16")


def vpc_cidr_problems(cidr: str, nodes: int) -> list[str]:
    """Why ``cidr`` cannot hold a region's VPC with ``nodes`` compute nodes, or nothing."""
    try:
        network = ipaddress.ip_network(cidr)
    except ValueError:
        return [f"'{cidr}' is not an IPv4 network like 10.10.0.0/16 (host bits must be zero)"]
    if not isinstance(network, ipaddress.IPv4Network):
        return [f"'{cidr}' is not IPv4; VPCs need an IPv4 range"]
    problems = []
    if not any(network.subnet_of(private) for private in _PRIVATE):
        problems.append(
            f"'{cidr}' is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"
        )
    if network.overlaps(DOCKER_BRIDGE):
        problems.append(f"'{cidr}' overlaps Docker's bridge {DOCKER_BRIDGE} on every node")
    if network.prefixlen not in _VPC_PREFIXES:
        problems.append(
            f"'{cidr}' must be /{_VPC_PREFIXES[0]} to /{_VPC_PREFIXES[-1]}: it is split into "
            f"subnets {SUBNET_PREFIX_DIFF} bits smaller and AWS subnets are /16 to /28"
        )
        return problems
    per_subnet = 2 ** (32 - network.prefixlen - SUBNET_PREFIX_DIFF) - _AWS_SUBNET_RESERVED
    needed = -(-nodes // NODE_SUBNETS)
    if per_subnet < needed:
        problems.append(
            f"'{cidr}' is too small for {nodes} nodes: each of its {NODE_SUBNETS} node subnets "
            f"has {per_subnet} usable addresses and needs {needed}"
        )
    return problems
