"""Every version the stack pins, in one place.

Images are pinned by tag (never ``latest``; a stack may pin the Logstash base by digest on top);
the images this stack builds itself (agent, logstash) are referenced by immutable digest in job
specs instead. Bump a version here and every component, node config and job spec that uses it
follows.
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
# The base of logstash/Dockerfile (its `LOGSTASH_BASE` build argument's default must equal this;
# tests/infra/test_images.py checks it). Pinned by tag only: no source this project can check
# publishes the tag's digest, so a stack that has verified one pins it with
# `bacalhau-logs:versions.logstashBaseDigest` (infra/images.py turns that into the build arg).
LOGSTASH_BASE_IMAGE = "docker.elastic.co/logstash/logstash-oss:8.19.20"


def bacalhau_image(version: str, *, dind: bool = False) -> str:
    """The Bacalhau image for ``version``; the dind variant runs Docker jobs inside a container."""
    return f"{BACALHAU_IMAGE}:{version}{'-dind' if dind else ''}"


# Where AWS nodes download the pinned Bacalhau release, and how they verify it. Bacalhau publishes
# no plain checksum list; each tarball has a `<tarball>.signature.sha256` file, an RSA signature of
# its sha256 digest, checked against this release key (as Bacalhau's own installer does). A stack
# may pin the tarball's sha256 on top (`bacalhau-logs:aws.bacalhauSha256`).
BACALHAU_RELEASE_BASE_URL = "https://get.bacalhau.org/releases"
BACALHAU_RELEASE_PUBLIC_KEY = """\
-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEA7bXxrECk3tQfKox7MDaN
OAQ+NATnILQ9XFfYHs+4Q04lK1tHpvUEwm9OwidMJKlr+M1f/9rzLYV6RDrv0FuA
xaxGS6xrYwmLiXhDj4KwU3v5e6lHhzupsj+7LNSZ9g+ppCXcw73l5wtNmFojKQDH
vpKDzB2KKqRq7/TRenNwvMD02zuDcjGdgXSeSiyIZ6jCn9Y6pX7nPF4rOxpFSL/w
oSb5q5tVY3ZqyrNx/Bk9mBoX3a8xDqFtthuC6SjIF1t5arLih2yEpq8hOdGyyX1l
uQCYlYuIwsYZL+fj2fFzhqpmrHBB97Npw1bTjnzQ8HQIsxkrMEg9ePFfcRfWw7w6
nWBLD4JOTFOoi9SPB0BdyqvE8B+6FTlT8XbK7/VtheR4yFVHvrnVkGzIm6AnwINc
9yFlS5FbxHh0vzL5G4jTYVZrZ7YaQ/zxgZ/SHE9fcSZv4l+W2vlo1EivtOgy1Ee6
OfDFMvdHyg04qjOGxUzYDxZ4/AL+ywSm1HDXP93Oi8icKXy5OANogW4XZ5hll54g
4EBqSON/HH4eIvyWTfFG+U6DBtD0Qn4gZO9y1KUNbhDQ0Z6LOC/mKgWhPSKRdFJk
L9lmeqYFIvAnBx5rmyE7Hlzqk4pSRfggra0D2ydTV79tUQGlX5wpkwch/s4nRmZb
rZd9rvTsifOjf2jxGGu5N6ECAwEAAQ==
-----END PUBLIC KEY-----
"""
OPENSEARCH_SERVICE_ENGINE = "OpenSearch_2.19"


def bacalhau_tarball(version: str, arch: str = "amd64") -> str:
    """The release asset name, e.g. ``bacalhau_v1.9.3_linux_amd64.tar.gz``."""
    return f"bacalhau_{version}_linux_{arch}.tar.gz"
