"""Names of things the stack creates, derived from project, stack and region.

Kept pure and in one place so every backend names a region's bucket, nodes and jobs the same way,
and so the rules (S3's 3-63 characters, DNS-label safety) are tested once. ``name_problems`` checks
the longest names a stack and region will produce, so settings can refuse them before anything is
declared.
"""

from __future__ import annotations

import re

_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
# A hostname label (RFC 1123): Bacalhau names nodes by hostname, and Linux allows 64 bytes.
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# OpenSearch Service domain names: 3-28 characters, starting with a lowercase letter.
_SEARCH_DOMAIN = re.compile(r"[a-z][a-z0-9-]{2,27}")
# AWS account ids, which make bucket names globally unique, are always 12 digits.
_ACCOUNT_ID_PLACEHOLDER = "0" * 12
# Nodes per region are at most 50 (settings): the widest node index has two digits.
_WIDEST_NODE_INDEX = 50


def stack_prefix(project: str, stack: str) -> str:
    """``bacalhau-logs-dev``: the prefix of every physical name in a stack."""
    return f"{project}-{stack}".lower()


def bucket_name(project: str, stack: str, region: str, suffix: str = "") -> str:
    """The archive bucket of one region; ``suffix`` makes it globally unique where S3 needs it."""
    name = f"{stack_prefix(project, stack)}-{region}-archive"
    if suffix:
        name = f"{name}-{suffix}"
    if not _S3_BUCKET.fullmatch(name):
        raise ValueError(
            f"bucket name '{name}' is not a valid S3 bucket name "
            "(3-63 lowercase letters, digits and '-'); shorten the stack or region name"
        )
    return name


def node_name(project: str, stack: str, region: str, index: int) -> str:
    """Compute node ``index`` (1-based) of a region; also its hostname and Bacalhau node name."""
    return f"{stack_prefix(project, stack)}-{region}-node-{index}"


def job_name(stack: str, region: str, job: str) -> str:
    """Bacalhau job names are unique per namespace, so the stack and region are part of them."""
    return f"{stack}-{region}-{job}"


def search_domain_name(stack: str, region: str | None) -> str:
    """``bl-<stack>`` or, with a domain per region, ``bl-<stack>-<region>``."""
    name = f"bl-{stack}" if region is None else f"bl-{stack}-{region}"
    return name.lower()


def image_list_parameter(project: str, stack: str, region: str) -> str:
    """The SSM parameter listing a region's job images, which its compute nodes pull."""
    return f"/{stack_prefix(project, stack)}/{region}/images"


def minio_host(project: str, stack: str) -> str:
    """The local backend's MinIO container, as jobs on the stack network reach it."""
    return f"{stack_prefix(project, stack)}-minio"


def opensearch_host(project: str, stack: str) -> str:
    """The local backend's OpenSearch container, as jobs on the stack network reach it."""
    return f"{stack_prefix(project, stack)}-opensearch"


def name_problems(
    project: str, stack: str, region: str, *, aws: bool, search_per_region: bool = False
) -> list[str]:
    """Why the longest names ``stack`` and ``region`` produce would be refused, or nothing.

    The tightest limits the stacks meet: an OpenSearch domain (28 characters, ``bl-<stack>``,
    or ``bl-<stack>-<region>`` per region), an S3 bucket (63, with a 12-digit account id on
    AWS) and a node's hostname (a 63-character DNS label). Other names (IAM, ECR, SSM, Docker
    volumes) allow far more.
    """
    problems = []
    try:
        bucket_name(project, stack, region, _ACCOUNT_ID_PLACEHOLDER if aws else "")
    except ValueError:
        # On AWS the bucket ends in "-<12-digit account id>".
        suffix = f"-{_ACCOUNT_ID_PLACEHOLDER}" if aws else ""
        name = f"{stack_prefix(project, stack)}-{region}-archive{suffix}"
        problems.append(
            f"the archive bucket '{name}' ({len(name)} characters) is not a valid S3 bucket name "
            "(at most 63 lowercase letters, digits and '-')"
        )
    host = node_name(project, stack, region, _WIDEST_NODE_INDEX)
    if not _HOSTNAME.fullmatch(host):
        problems.append(
            f"the node hostname '{host}' ({len(host)} characters) is not a DNS label of at most 63"
        )
    if aws:
        domain = search_domain_name(stack, region if search_per_region else None)
        if not _SEARCH_DOMAIN.fullmatch(domain):
            problems.append(
                f"the OpenSearch domain '{domain}' ({len(domain)} characters) exceeds the 28 "
                "OpenSearch Service allows"
                + ("; or use aws.opensearch.placement: home" if search_per_region else "")
            )
    return problems
