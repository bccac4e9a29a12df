"""Read the full stdout of an execution from what Bacalhau's S3 publisher stored.

The publisher stores a result directory (``stdout``, ``stderr``, ``exitCode``, outputs) under
``<Key>`` uncompressed, or as one ``<Key>.tar.gz`` with ``Compress``. The orchestrator truncates
the stdout it returns over the API; the published copy is complete.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from typing import Any

from agent.s3 import S3Client


def stdout_location(published: Mapping[str, Any]) -> tuple[str, str] | None:
    """(bucket, key) of the stored stdout, or None when the result is not on S3."""
    if str(published.get("Type", "")).lower() != "s3":
        return None
    params = published.get("Params")
    if not isinstance(params, Mapping):
        return None
    bucket, key = params.get("Bucket"), params.get("Key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        return None
    return bucket, key if key.endswith(".tar.gz") else key.rstrip("/") + "/stdout"


def read_stdout(client: S3Client, bucket: str, key: str) -> str:
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    if not key.endswith(".tar.gz"):
        return body.decode("utf-8")
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.lstrip("./") == "stdout":
                extracted = archive.extractfile(member)
                if extracted is not None:
                    return extracted.read().decode("utf-8")
    raise KeyError(f"s3://{bucket}/{key} holds no stdout")
