"""The one S3 client factory, and S3 errors turned into messages an operator can act on.

Credentials come from botocore's standard chain (environment, shared config, instance role),
so jobs never carry them; `endpoint_url` points the same code at MinIO or a local test server.
The client is botocore's own, as boto3 would make it: boto3 adds only managed transfers and
resources, which the agent does not use, and importing it (with s3transfer) cost the
compactor about 25 ms of its start-up.
"""

from typing import TYPE_CHECKING, Any, cast

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

__all__ = ["S3Client", "describe_failure", "is_fatal", "make_client"]

# Bounded: a flaky endpoint is retried a few times with backoff, then the run fails.
MAX_ATTEMPTS = 4
_AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "403",
}


def make_client(endpoint_url: str | None = None, region_name: str | None = None) -> S3Client:
    """An S3 client for AWS or, with `endpoint_url`, any S3-compatible server."""
    config = Config(
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        # Path-style keeps bucket names out of DNS, which MinIO and local servers need.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    session = botocore.session.get_session()
    client = session.create_client(
        "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
    )
    # botocore's stubs type every client as BaseClient; this one is S3's.
    return cast("S3Client", client)


def describe_failure(error: Exception, bucket: str, endpoint_url: str | None) -> str:
    """One line naming the bucket and endpoint and what to check."""
    where = f"bucket {bucket!r} at {endpoint_url or 'the default AWS S3 endpoint'}"
    if isinstance(error, NoCredentialsError):
        return f"no S3 credentials found for {where} (set AWS_* variables or an instance role)"
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _AUTH_CODES:
            return f"S3 refused the credentials for {where}: {code}; check the access key/secret"
        if code in {"NoSuchBucket", "404"}:
            return f"{where} does not exist"
        return f"S3 error on {where}: {code or error}"
    if isinstance(error, BotoCoreError):
        return f"cannot reach {where}: {error}"
    return f"S3 failure on {where}: {error}"


def is_fatal(error: Exception) -> bool:
    """Whether an error means no hour can succeed (so stop rather than try the next hour)."""
    if isinstance(error, NoCredentialsError):
        return True
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        return code in _AUTH_CODES or code in {"NoSuchBucket", "404"}
    return isinstance(error, BotoCoreError)
