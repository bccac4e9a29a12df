"""Every version the stack pins, in one place.

Images are pinned by tag (never ``latest``); the images this stack builds itself (agent, logstash)
are referenced by immutable digest in job specs instead. Bump a version here and every component,
node config and job spec that uses it follows.
"""

from __future__ import annotations

import re

BACALHAU_VERSION = "v1.9.3"
BACALHAU_VERSION_PATTERN = re.compile(r"^v1\.9\.\d+$")

BACALHAU_IMAGE = "ghcr.io/bacalhau-project/bacalhau"
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
OPENSEARCH_VERSION = "2.19.1"
OPENSEARCH_IMAGE = f"opensearchproject/opensearch:{OPENSEARCH_VERSION}"
DASHBOARDS_IMAGE = f"opensearchproject/opensearch-dashboards:{OPENSEARCH_VERSION}"
REGISTRY_IMAGE = "registry:2.8.3"


def bacalhau_image(version: str, *, dind: bool = False) -> str:
    """The Bacalhau image for ``version``; the dind variant runs Docker jobs inside a container."""
    return f"{BACALHAU_IMAGE}:{version}{'-dind' if dind else ''}"
