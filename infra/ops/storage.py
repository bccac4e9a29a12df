"""The S3 client that reads published query results from the operator's machine."""

from __future__ import annotations

from collections.abc import Callable

import boto3
from botocore.config import Config

from agent.s3 import MAX_ATTEMPTS, S3Client, make_client

# (endpoint or None for AWS, region, (access key, secret) or None for boto3's chain) -> client
S3ClientFactory = Callable[[str | None, str | None, tuple[str, str] | None], S3Client]


def results_client(
    endpoint: str | None, region: str | None, keys: tuple[str, str] | None
) -> S3Client:
    """boto3's credential chain, or explicit keys (the local stack's MinIO keys)."""
    if keys is None:
        return make_client(endpoint, region)
    session = boto3.session.Session(aws_access_key_id=keys[0], aws_secret_access_key=keys[1])
    config = Config(
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint else None,
    )
    client: S3Client = session.client(
        "s3", endpoint_url=endpoint, region_name=region, config=config
    )
    return client
