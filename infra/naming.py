"""Names of things the stack creates, derived from project, stack and region.

Kept pure and in one place so every backend names a region's bucket, nodes and jobs the same way,
and so the rules (S3's 3-63 characters, DNS-label safety) are tested once.
"""

from __future__ import annotations

import re

_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def stack_prefix(project: str, stack: str) -> str:
    """``bacalhau-logs-dev``: the prefix of every physical name in a stack."""
    return f"{project}-{stack}".lower()


def bucket_name(project: str, stack: str, region: str, suffix: str = "") -> str:
    """The archive bucket of one region; ``suffix`` makes it globally unique where S3 needs it."""
    name = f"{stack_prefix(project, stack)}-{region}-archive"
    if suffix:
        name = f"{name}-{suffix}"
    if not _S3_BUCKET.match(name):
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
