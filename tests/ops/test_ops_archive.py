"""`archive`: a batch job over one region's archive; a truncated result is read from S3."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from agent.s3 import make_client
from tests.ops.conftest import NODES, Cli, rows_json
from tests.support.s3_server import moto_s3_server

pytestmark = pytest.mark.s3
EU1 = NODES["eu-1"][0]
BUCKET = "bacalhau-logs-dev-eu-1-archive"
ROWS = [{"referrer": f"https://site-{i}.example", "requests": 100 - i} for i in range(50)]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def archive_cli(cli: Cli, s3_endpoint: str, make_registered_job, monkeypatch) -> Cli:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    compactor = make_registered_job("dev-eu-1-compactor")
    # As the stack registers it: the endpoint and region the region's nodes use for S3.
    cli.orchestrator.jobs[compactor]["Tasks"][0]["Engine"]["Params"]["Parameters"] = [
        "compact", "--bucket", BUCKET, "--endpoint-url", "http://storage:9000",
        "--prefix", "logs/", "--region-name", "us-east-1",
    ]  # fmt: skip
    cli.write_outputs(s3Endpoint=s3_endpoint, jobs={"eu-1": {"compactor": compactor}})
    client = make_client(s3_endpoint, "us-east-1")
    if BUCKET not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        client.create_bucket(Bucket=BUCKET)
    return cli


def _publish(cli: Cli, s3_endpoint: str, stdout: str, store: bool) -> None:
    def react(job: dict[str, object]) -> None:
        key = f"ops-results/{job['ID']}/e-1/"
        if store:
            make_client(s3_endpoint, "us-east-1").put_object(
                Bucket=BUCKET, Key=key + "stdout", Body=stdout.encode()
            )
        cli.orchestrator.add_execution(
            str(job["ID"]),
            EU1,
            stdout=stdout[:200],
            stdout_truncated=True,
            published_result={"Type": "s3", "Params": {"Bucket": BUCKET, "Key": key}},
        )

    cli.on_submit(react)


def test_truncated_batch_result_is_read_in_full_from_the_region_bucket(
    archive_cli: Cli, s3_endpoint: str
):
    _publish(archive_cli, s3_endpoint, rows_json(ROWS), store=True)
    code, out, err = archive_cli.run(
        "archive", "top-referring-sites", "--region", "eu-1",
        "--from", "2025-01-10", "--to", "2025-01-19", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out) == [{"node": EU1, "region": "eu-1", **row} for row in ROWS]
    assert "read the full output from S3" in err
    (job,) = archive_cli.submitted
    task = job["Tasks"][0]
    assert job["Type"] == "batch"
    assert task["InputSources"][0]["Source"]["Params"] == {
        "Bucket": BUCKET,
        "Key": "logs/region=eu-1/dt=2025-01-1*",
        "Region": "us-east-1",
        "Endpoint": "http://storage:9000",
    }
    assert task["Publisher"]["Params"]["Endpoint"] == "http://storage:9000"
    parameters = task["Engine"]["Params"]["Parameters"]
    assert parameters[5:9] == ["--since", "2025-01-10T00:00:00", "--until", "2025-01-20T00:00:00"]


def test_unreadable_published_result_leaves_rows_marked_truncated(
    archive_cli: Cli, s3_endpoint: str
):
    _publish(archive_cli, s3_endpoint, rows_json(ROWS), store=False)
    code, out, err = archive_cli.run(
        "archive", "top-referring-sites", "--region", "eu-1", "--date", "2025-01-15",
        "--format", "json",
    )  # fmt: skip
    assert code == 3
    rows = json.loads(out)
    assert rows and all(row["truncated"] is True for row in rows)
    assert len(rows) < len(ROWS)
    assert "reading the published output failed" in err
    assert "INCOMPLETE" in err
