"""The compactor against a real S3-protocol server (moto in server mode on 127.0.0.1)."""

import gzip
import io
import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from agent.archive import ID_OFFSET, ID_SOURCE, REJECTED_KEY, SOURCES_KEY
from agent.compact import DOWNLOAD_WORKERS, Compactor
from agent.generate import backfill_lines
from agent.s3 import S3Client, make_client
from tests.agent.conftest import event_line, query_json, run_agent

pytestmark = pytest.mark.s3

PREFIX = "logs/"
HOUR = "logs/region=eu-west-1/dt=2025-01-01/hour=10/"
COMPACTED = HOUR + "compacted.parquet"


def _lines(seed: int, count: int, hour: int = 10) -> list[bytes]:
    start = datetime(2025, 1, 1, hour)
    return [
        line.encode() for line in backfill_lines(seed, count, start, start + timedelta(hours=1))
    ]


def _put(client: S3Client, bucket: str, key: str, lines: list[bytes]) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=gzip.compress(b"".join(lines)))


def _compacted(client: S3Client, bucket: str) -> tuple[list[dict[str, object]], dict[str, object]]:
    """The compacted rows (event fields only) and what the footer records (source names)."""
    body = client.get_object(Bucket=bucket, Key=COMPACTED)["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    metadata = pq.read_metadata(io.BytesIO(body)).metadata
    recorded = {
        "sources": sorted(json.loads(metadata[SOURCES_KEY.encode()])),
        "rejected": json.loads(metadata[REJECTED_KEY.encode()]),
    }
    return table.drop_columns([ID_SOURCE, ID_OFFSET]).to_pylist(), recorded


def _compactor(client: S3Client, bucket: str) -> Compactor:
    return Compactor(client, bucket, PREFIX, grace=timedelta(minutes=10))


@pytest.fixture
def client(s3_endpoint: str, s3_env: None) -> S3Client:
    return make_client(s3_endpoint)


def test_duplicates_are_removed_and_sources_recorded(client: S3Client, bucket: str) -> None:
    first = _lines(1, 400)
    _put(client, bucket, HOUR + "a.gz", first)
    # At-least-once delivery: part of a.gz arrives again inside b.gz.
    _put(client, bucket, HOUR + "b.gz", first[100:150] + _lines(2, 100))
    summary = _compactor(client, bucket).run_once()
    rows, recorded = _compacted(client, bucket)
    assert len(rows) == len(set(first + _lines(2, 100)))
    assert summary.outcomes[0].duplicates == 50
    assert recorded == {"sources": ["a.gz", "b.gz"], "rejected": {}}
    assert [r["time_local"] for r in rows] == sorted(r["time_local"] for r in rows)


def test_rerun_is_a_no_op_and_new_raw_triggers_a_rebuild(client: S3Client, bucket: str) -> None:
    _put(client, bucket, HOUR + "a.gz", _lines(1, 200))
    compactor = _compactor(client, bucket)
    assert compactor.run_once().outcomes[0].written
    etag = client.head_object(Bucket=bucket, Key=COMPACTED)["ETag"]
    assert not compactor.run_once().outcomes[0].written
    assert client.head_object(Bucket=bucket, Key=COMPACTED)["ETag"] == etag
    _put(client, bucket, HOUR + "late.gz", _lines(3, 30))
    assert compactor.run_once().outcomes[0].written
    rows, recorded = _compacted(client, bucket)
    assert recorded["sources"] == ["a.gz", "late.gz"]
    assert len(rows) == len(set(_lines(1, 200) + _lines(3, 30)))


def test_crash_between_read_and_write_loses_nothing(
    client: S3Client, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put(client, bucket, HOUR + "a.gz", _lines(1, 300))
    compactor = _compactor(client, bucket)

    def crash(key: str, path: Path) -> None:
        raise SystemExit("killed between read and write")

    monkeypatch.setattr(compactor, "_upload", crash)
    with pytest.raises(SystemExit):
        compactor.run_once()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=HOUR)["Contents"]
    assert [o["Key"] for o in listed] == [HOUR + "a.gz"]
    monkeypatch.undo()
    assert _compactor(client, bucket).run_once().outcomes[0].written
    rows, _ = _compacted(client, bucket)
    assert len(rows) == len(set(_lines(1, 300)))


def test_open_and_empty_hours(client: S3Client, bucket: str) -> None:
    _put(client, bucket, HOUR + "empty.gz", [])
    open_hour = "logs/region=eu-west-1/dt=2025-01-01/hour=11/"
    _put(client, bucket, open_hour + "a.gz", _lines(1, 10, hour=11))
    # 11:05 is before 11:00 + 1h + grace: hour 11 is still open, hour 10 is closed.
    compactor = Compactor(
        client, bucket, PREFIX, timedelta(minutes=10), now=lambda: datetime(2025, 1, 1, 12, 5)
    )
    summary = compactor.run_once()
    assert [o.hour.start.hour for o in summary.outcomes] == [10]
    rows, recorded = _compacted(client, bucket)
    assert rows == [] and recorded["sources"] == ["empty.gz"]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=open_hour)["Contents"]]
    assert keys == [open_hour + "a.gz"]
    assert not compactor.run_once().outcomes[0].written


def test_object_that_is_not_gzip(client: S3Client, bucket: str, tmp_path: Path) -> None:
    good = _lines(1, 100)
    _put(client, bucket, HOUR + "good.gz", good)
    client.put_object(Bucket=bucket, Key=HOUR + "bad.gz", Body=b"".join(_lines(2, 20)))
    compactor = _compactor(client, bucket)
    outcome = compactor.run_once().outcomes[0]
    rows, recorded = _compacted(client, bucket)
    assert len(rows) == len(set(good))
    assert recorded["sources"] == ["good.gz"] and list(recorded["rejected"]) == ["bad.gz"]
    assert list(outcome.rejected) == ["bad.gz"]
    # Not retried while unchanged, but retried once it is replaced by a readable object.
    assert not compactor.run_once().outcomes[0].written
    _put(client, bucket, HOUR + "bad.gz", _lines(2, 20))
    assert compactor.run_once().outcomes[0].written
    rows, recorded = _compacted(client, bucket)
    assert recorded == {"sources": ["bad.gz", "good.gz"], "rejected": {}}
    assert len(rows) == len(set(good + _lines(2, 20)))


def test_raw_aged_out_keeps_compacted_events(client: S3Client, bucket: str) -> None:
    _put(client, bucket, HOUR + "a.gz", _lines(1, 100))
    compactor = _compactor(client, bucket)
    compactor.run_once()
    client.delete_object(Bucket=bucket, Key=HOUR + "a.gz")  # what a lifecycle rule does
    _put(client, bucket, HOUR + "b.gz", _lines(2, 10))
    compactor.run_once()
    rows, recorded = _compacted(client, bucket)
    assert recorded["sources"] == ["a.gz", "b.gz"]
    assert len(rows) == len(set(_lines(1, 100) + _lines(2, 10)))


def _download(client: S3Client, bucket: str, root: Path) -> None:
    for item in client.list_objects_v2(Bucket=bucket)["Contents"]:
        target = root / item["Key"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())


def test_cli_compact_then_query_counts_each_event_once(
    client: S3Client, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    first, second = _lines(1, 300), _lines(2, 50)
    _put(client, bucket, HOUR + "a.gz", first)
    _put(client, bucket, HOUR + "b.gz", first[:20])
    args = ("compact", "--bucket", bucket, "--endpoint-url", s3_endpoint, "--once")
    result = run_agent(*args)
    assert "20 duplicates removed" in result.stderr
    _put(client, bucket, HOUR + "c.gz", second)  # arrives after compaction
    _download(client, bucket, tmp_path)
    sql = "SELECT count(*) AS n FROM logs"
    rows, _ = query_json("--logs", str(tmp_path / "logs"), "--sql", sql)
    assert rows[0]["n"] == len(set(first + second))


def test_wrong_credentials_fail_clearly(bucket: str, s3_endpoint: str) -> None:
    # moto accepts any key unless told to authenticate; this switches that on server-wide.
    requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"0", timeout=5).raise_for_status()
    try:
        result = run_agent(
            "compact", "--bucket", bucket, "--endpoint-url", s3_endpoint, "--once", check=False
        )
    finally:
        requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"inf", timeout=5)
    assert result.returncode == 1
    assert bucket in result.stderr and s3_endpoint in result.stderr
    assert "refused the credentials" in result.stderr and "InvalidAccessKeyId" in result.stderr
    assert "Traceback" not in result.stderr


def _bad_lines() -> list[bytes]:
    return [
        b'{"remote_addr": "\xff", "status": 200}\n',
        event_line(status="404"),
        event_line(body_bytes_sent=12.9),
        event_line(remote_addr=None),
        event_line(request="/" + "a" * 2_000_000),
    ]


def test_bad_lines_cost_only_themselves(client: S3Client, bucket: str) -> None:
    good = _lines(1, 100)
    _put(client, bucket, HOUR + "a.gz", good[:50] + _bad_lines() + good[50:])
    summary = _compactor(client, bucket).run_once()
    outcome = summary.outcomes[0]
    assert not summary.failed
    assert (outcome.events, outcome.malformed_lines) == (len(set(good)), 5)
    assert len(_compacted(client, bucket)[0]) == len(set(good))


def test_huge_line_in_a_raw_object(client: S3Client, bucket: str) -> None:
    good = _lines(1, 40)
    huge = event_line(request="/" + "a" * (40 << 20))
    _put(client, bucket, HOUR + "a.gz", [*good[:20], huge, *good[20:]])
    outcome = _compactor(client, bucket).run_once().outcomes[0]
    assert (outcome.events, outcome.malformed_lines) == (40, 1)


def test_overwritten_raw_object_is_read_again(client: S3Client, bucket: str) -> None:
    _put(client, bucket, HOUR + "a.gz", _lines(1, 100))
    compactor = _compactor(client, bucket)
    compactor.run_once()
    # Same name, new content: a new ETag.
    _put(client, bucket, HOUR + "a.gz", _lines(1, 100) + _lines(2, 10))
    outcome = compactor.run_once().outcomes[0]
    assert outcome.written and outcome.new_sources == ["a.gz"]
    rows, _ = _compacted(client, bucket)
    assert len(rows) == len(set(_lines(1, 100) + _lines(2, 10)))
    body = client.get_object(Bucket=bucket, Key=COMPACTED)["Body"].read()
    sources = json.loads(pq.read_metadata(io.BytesIO(body)).metadata[SOURCES_KEY.encode()])
    assert sources == {"a.gz": client.head_object(Bucket=bucket, Key=HOUR + "a.gz")["ETag"]}
    assert not compactor.run_once().outcomes[0].written


def test_overlapping_compactors_never_lose_events(
    client: S3Client, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put(client, bucket, HOUR + "a.gz", _lines(1, 100))
    slow, fast = _compactor(client, bucket), _compactor(client, bucket)
    upload = slow._upload
    raced = []

    def late_upload(objects: object, path: Path) -> None:
        if not raced:
            # While `slow` built its file from a.gz, b.gz arrived and `fast` compacted both.
            raced.append(True)
            _put(client, bucket, HOUR + "b.gz", _lines(2, 30))
            assert fast.run_once().outcomes[0].written
        upload(objects, path)  # type: ignore[arg-type]

    monkeypatch.setattr(slow, "_upload", late_upload)
    summary = slow.run_once()
    assert not summary.failed
    rows, recorded = _compacted(client, bucket)
    assert recorded["sources"] == ["a.gz", "b.gz"]
    assert len(rows) == len(set(_lines(1, 100) + _lines(2, 30)))


@pytest.mark.parametrize(
    "body",
    [b"", b"not parquet at all", "bad-metadata"],
    ids=["empty", "not-parquet", "bad-metadata"],
)
def test_unreadable_compacted_is_confined_to_its_hour(
    client: S3Client, bucket: str, s3_endpoint: str, body: object
) -> None:
    _put(client, bucket, HOUR + "a.gz", _lines(1, 50))
    if body == "bad-metadata":
        table = pa.table({"x": [1]}).replace_schema_metadata({SOURCES_KEY: "{oops"})
        sink = io.BytesIO()
        pq.write_table(table, sink)
        body = sink.getvalue()
    assert isinstance(body, bytes)
    client.put_object(Bucket=bucket, Key=COMPACTED, Body=body)
    other = "logs/region=eu-west-1/dt=2025-01-01/hour=11/"
    _put(client, bucket, other + "a.gz", _lines(2, 20, hour=11))
    log = io.StringIO()
    summary = _compactor(client, bucket).run_once(log)
    assert [h.start.hour for h in summary.failed] == [10]
    assert [o.hour.start.hour for o in summary.outcomes] == [11]
    assert "compacted.parquet" in log.getvalue() and "left as it is" in log.getvalue()
    # Left untouched for an operator.
    assert client.get_object(Bucket=bucket, Key=COMPACTED)["Body"].read() == body
    result = run_agent(
        "compact", "--bucket", bucket, "--endpoint-url", s3_endpoint, "--once", check=False
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_an_hours_objects_download_together(
    client: S3Client, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More objects than download workers, and the compacted file they merge with: the first
    DOWNLOAD_WORKERS downloads must all be under way at once (fetched one by one, the barrier
    breaks and the hour fails), never more than that, and every event lands once."""
    _put(client, bucket, HOUR + "a.gz", _lines(1, 100))
    compactor = _compactor(client, bucket)
    compactor.run_once()
    later = [_lines(10 + n, 40) for n in range(DOWNLOAD_WORKERS + 3)]
    for n, lines in enumerate(later):
        # Each object re-delivers part of the one before it.
        _put(client, bucket, HOUR + f"late-{n}.gz", (later[n - 1][:5] if n else []) + lines)
    barrier = threading.Barrier(DOWNLOAD_WORKERS, timeout=30)
    lock = threading.Lock()
    in_flight, most, fetched = [0], [0], []
    download = compactor._download

    def tracked(key: str, etag: str, path: Path) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            first = len(fetched) < DOWNLOAD_WORKERS
            fetched.append(key.rsplit("/", 1)[1])
        try:
            if first:
                barrier.wait()
            download(key, etag, path)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(compactor, "_download", tracked)
    summary = compactor.run_once()
    assert not summary.failed
    assert most[0] == DOWNLOAD_WORKERS
    names = [f"late-{n}.gz" for n in range(len(later))]
    assert sorted(fetched) == sorted(["compacted.parquet", *names])
    rows, recorded = _compacted(client, bucket)
    assert recorded["sources"] == ["a.gz", *names]
    expected = set(_lines(1, 100)).union(*later)
    assert len(rows) == len(expected)
    assert summary.outcomes[0].duplicates == 5 * (len(later) - 1)


def test_a_failed_download_fails_its_hour_and_writes_nothing(
    client: S3Client, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object gone between listing and reading (a lifecycle rule, an operator): the hour
    is reported failed with nothing written, the next hour still compacts, and the next run
    compacts what is left."""
    for n in range(DOWNLOAD_WORKERS + 2):
        _put(client, bucket, HOUR + f"p-{n}.gz", _lines(n, 30))
    other = "logs/region=eu-west-1/dt=2025-01-01/hour=11/"
    _put(client, bucket, other + "a.gz", _lines(50, 20, hour=11))
    compactor = _compactor(client, bucket)
    download = compactor._download

    def vanishing(key: str, etag: str, path: Path) -> None:
        if key == HOUR + "p-2.gz":
            client.delete_object(Bucket=bucket, Key=key)
        download(key, etag, path)

    monkeypatch.setattr(compactor, "_download", vanishing)
    log = io.StringIO()
    summary = compactor.run_once(log)
    assert [h.start.hour for h in summary.failed] == [10]
    assert [o.hour.start.hour for o in summary.outcomes] == [11]
    assert "NoSuchKey" in log.getvalue()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=HOUR)["Contents"]
    assert COMPACTED not in [o["Key"] for o in listed]
    monkeypatch.undo()
    assert _compactor(client, bucket).run_once().outcomes[0].written
    rows, recorded = _compacted(client, bucket)
    kept = [n for n in range(DOWNLOAD_WORKERS + 2) if n != 2]
    assert recorded["sources"] == [f"p-{n}.gz" for n in kept]
    assert len(rows) == len(set().union(*(_lines(n, 30) for n in kept)))
