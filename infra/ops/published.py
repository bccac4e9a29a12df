"""Read a file of an execution's result from where Bacalhau's S3 publisher stored it.

The result directory holds ``stdout``, ``stderr`` and ``exitCode`` (models.DownloadFilename*,
pkg/models/constants.go), written by executor.WriteJobResults up to 1 GB each, while the API
returns 2 KiB. The publisher (pkg/publisher/s3/publisher.go at v1.9.3) stores it uncompressed
as ``<Key>/<file>`` with ``Encoding: plain`` (what the query jobs use), or as one
``<Key>.tar.gz`` otherwise; its PublishedResult names the bucket and the key it used.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from typing import Any

from agent.s3 import S3Client

ARCHIVE_SUFFIX = ".tar.gz"


def result_location(published: Mapping[str, Any], name: str) -> tuple[str, str] | None:
    """(bucket, key) of the object holding ``name``, or None when the result is not on S3.

    For an archive the key is the archive's; ``read_result_file`` finds ``name`` inside it.
    """
    if str(published.get("Type", "")).lower() != "s3":
        return None
    params = published.get("Params")
    if not isinstance(params, Mapping):
        return None
    bucket, key = params.get("Bucket"), params.get("Key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        return None
    return bucket, key if key.endswith(ARCHIVE_SUFFIX) else key.rstrip("/") + "/" + name


def read_result_file(client: S3Client, bucket: str, key: str, name: str) -> str:
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    if not key.endswith(ARCHIVE_SUFFIX):
        return body.decode("utf-8")
    # Members are named relative to the result directory (gzip.Compress, pkg/lib/gzip): the
    # top-level one, not a job output that happens to share the name.
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.removeprefix("./") == name:
                extracted = archive.extractfile(member)
                if extracted is not None:
                    return extracted.read().decode("utf-8")
    raise KeyError(f"s3://{bucket}/{key} holds no {name}")
