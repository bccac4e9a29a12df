"""Issue 12, reader side: duplicates are removed by `event_id`, never by content.

A crash is replayed: the shipper re-delivers part of a node's file after a restart, so the same
lines (same `event_id`) land in a second raw object; the data also holds identical legitimate
requests (a scraper's five 429s in one second). The node folder, the raw archive and the
compacted archive must count the same requests.
"""

import gzip
import io
import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from agent.compact import Compactor
from agent.s3 import S3Client, make_client
from tests.agent.conftest import count, event_line, write_raw

pytestmark = pytest.mark.s3

HOUR = "logs/region=eu-1/dt=2025-01-01/hour=10/"


def _node_lines() -> list[bytes]:
    scraper = event_line(remote_addr="203.0.113.9", status=429, request="/api/v1/search?q=x")
    lines = [event_line(request=f"/products/{i}") for i in range(200)]
    return lines[:100] + [scraper] * 5 + lines[100:]


def _with_ids(lines: list[bytes], node: str = "node-1", inode: int = 4711) -> list[bytes]:
    """The archived form of a node's lines: one added key, from node, file and byte offset."""
    archived, offset = [], 0
    for line in lines:
        event = json.loads(line)
        event["event_id"] = f"{node}:{inode}:{offset}"
        archived.append((json.dumps(event) + "\n").encode())
        offset += len(line)
    return archived


def _replayed_archive() -> dict[str, list[bytes]]:
    archived = _with_ids(_node_lines())
    # Delivered up to line 150, crash, restart from line 80: lines 80-149 arrive twice.
    return {"part-1.gz": archived[:150], "part-2.gz": archived[80:]}


def test_node_raw_archive_and_compacted_count_the_same(
    tmp_path: Path, s3_endpoint: str, s3_env: None, bucket: str
) -> None:
    write_raw(tmp_path / "node" / "application.log", _node_lines())
    node_count, _ = count(tmp_path / "node")
    assert node_count == 205

    archive = tmp_path / "archive" / HOUR
    for name, lines in _replayed_archive().items():
        write_raw(archive / name, lines)
    raw_count, stderr = count(tmp_path / "archive")
    assert raw_count == node_count
    assert "70 duplicate events removed" in stderr

    client = make_client(s3_endpoint)
    for name, lines in _replayed_archive().items():
        client.put_object(Bucket=bucket, Key=HOUR + name, Body=gzip.compress(b"".join(lines)))
    outcome = Compactor(client, bucket, "logs/", timedelta(0)).run_once().outcomes[0]
    assert (outcome.events, outcome.duplicates) == (205, 70)
    compacted = tmp_path / "compacted" / HOUR / "compacted.parquet"
    compacted.parent.mkdir(parents=True)
    compacted.write_bytes(_object(client, bucket, HOUR + "compacted.parquet"))
    assert pq.read_table(compacted).num_rows == 205
    assert count(tmp_path / "compacted")[0] == node_count

    # The raw objects next to the compacted file are covered by it: still 205.
    for name, lines in _replayed_archive().items():
        write_raw(compacted.parent / name, lines)
    assert count(tmp_path / "compacted")[0] == node_count


def test_replay_after_compaction_is_removed_against_compacted_rows(
    s3_endpoint: str, s3_env: None, bucket: str, tmp_path: Path
) -> None:
    client = make_client(s3_endpoint)
    archived = _with_ids(_node_lines())
    client.put_object(Bucket=bucket, Key=HOUR + "a.gz", Body=gzip.compress(b"".join(archived)))
    compactor = Compactor(client, bucket, "logs/", timedelta(0))
    compactor.run_once()
    late = archived[190:] + _with_ids([event_line(request="/late")], inode=99)
    client.put_object(Bucket=bucket, Key=HOUR + "late.gz", Body=gzip.compress(b"".join(late)))
    outcome = compactor.run_once().outcomes[0]
    assert (outcome.events, outcome.duplicates) == (206, len(archived) - 190)
    table = pq.read_table(io.BytesIO(_object(client, bucket, HOUR + "compacted.parquet")))
    assert table.column("event_id_source").null_count == 0
    assert table.column("event_id_offset").null_count == 0
    assert table.num_rows == 206


def test_identical_lines_with_different_ids_are_different_events(tmp_path: Path) -> None:
    same = event_line(status=429)
    archive = tmp_path / "archive" / HOUR
    write_raw(archive / "a.gz", _with_ids([same] * 5))
    # Archives written before identities: the exact-duplicate rule still applies.
    write_raw(archive / "legacy.gz", [event_line(status=503)] * 3)
    n, _ = count(tmp_path / "archive")
    assert n == 5 + 1


def _object(client: S3Client, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
