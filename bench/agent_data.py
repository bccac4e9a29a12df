"""Build the agent benchmark data under bench/data/ (gitignored).

    python bench/agent_data.py [--sizes 300000 1000000 3000000 6000000] [--hour-events 3000000]

For each size, one day of `generate` output (seed 42, 2025-01-01) laid out three ways:
- <size>/node/: a node's log folder as rotation leaves it (live + `.1` plain, `.2.gz`...`.11.gz`);
- <size>/archive-raw/: the archive layout with event identities (`event_id` =
  `node-<n>:<inode>:<byte offset>`, three nodes), two raw gzip objects per hour, and 1 % of each
  hour's lines delivered twice (a shipper restart), so readers have duplicates to remove;
- <size>/archive-compacted/: the same day after `agent compact` (against a local moto S3).
And hour/: one hour of `--hour-events` events in two raw objects, for the compactor.
"""

import argparse
import gzip
import json
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.compact import Compactor
from agent.generate import backfill_lines
from agent.s3 import make_client

DATA = Path(__file__).resolve().parent / "data"
DAY = datetime(2025, 1, 1)
NODE_FILES = 12
NODES = 3
REGION = "bench"
REPLAYED = 0.01


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(lines).encode()
    path.write_bytes(gzip.compress(data, compresslevel=6) if path.suffix == ".gz" else data)


def build_node(lines: list[str], root: Path) -> None:
    """Oldest first: the oldest chunk is the highest-numbered .gz, the newest the live file."""
    per_file = -(-len(lines) // NODE_FILES)
    for index, start in enumerate(range(0, len(lines), per_file)):
        age = NODE_FILES - 1 - index
        name = "application.log" + ("" if age == 0 else ".1" if age == 1 else f".{age}.gz")
        _write(root / "node" / name, lines[start : start + per_file])


def with_identity(lines: list[str]) -> list[str]:
    """The archived form: each line gets `event_id` from its node, file and byte offset."""
    offsets = [0] * NODES
    archived = []
    for index, line in enumerate(lines):
        node = index % NODES
        event = json.loads(line)
        event["event_id"] = f"node-{node}:{4711 + node}:{offsets[node]}"
        offsets[node] += len(line)
        archived.append(json.dumps(event) + "\n")
    return archived


def build_archive(lines: list[str], root: Path, name: str = "archive-raw") -> int:
    """Two raw objects per hour, 1 % of each hour's first object delivered again in the
    second; returns the number of events delivered twice."""
    by_hour: dict[int, list[str]] = {}
    for line in with_identity(lines):
        by_hour.setdefault(int(line[line.index('"time_local": "') + 26 :][:2]), []).append(line)
    replayed = 0
    for hour, hour_lines in by_hour.items():
        folder = root / name / f"region={REGION}" / f"dt={DAY:%Y-%m-%d}" / f"hour={hour:02d}"
        half = len(hour_lines) // 2
        again = hour_lines[: int(half * REPLAYED)]
        replayed += len(again)
        _write(folder / "part-a.gz", hour_lines[:half])
        _write(folder / "part-b.gz", hour_lines[half:] + again)
    return replayed


def compact(raw_root: Path, target: Path, bucket: str) -> None:
    """Upload `raw_root` to a local moto S3 server, run the compactor, download its output.

    moto keeps its buckets for the whole process, so each size gets its own bucket: the same
    keys in one bucket would be overwritten objects, merged into the earlier compacted rows.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = make_client(f"http://{host}:{port}", "us-east-1")
        client.create_bucket(Bucket=bucket)
        for path in sorted(raw_root.rglob("*.gz")):
            key = "logs/" + path.relative_to(raw_root).as_posix()
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        Compactor(client, bucket, "logs/", timedelta(0)).run_once()
        for item in client.list_objects_v2(Bucket=bucket, Prefix="logs/")["Contents"]:
            if item["Key"].endswith("compacted.parquet"):
                path = target / item["Key"].removeprefix("logs/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    finally:
        server.stop()


def build_size(events: int) -> dict[str, object]:
    root = DATA / str(events)
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    lines = list(backfill_lines(42, events, DAY, DAY + timedelta(days=1)))
    build_node(lines, root)
    replayed = build_archive(lines, root)
    compact(root / "archive-raw", root / "archive-compacted", f"bench-{events}")
    return {
        "events": events,
        "raw_bytes": sum(len(line) for line in lines),
        "replayed_events": replayed,
        "seconds": round(time.perf_counter() - started, 1),
    }


def build_hour(events: int) -> dict[str, object]:
    """One hour, two raw objects, for the compactor benchmark."""
    root = DATA / "hour"
    shutil.rmtree(root, ignore_errors=True)
    start = DAY + timedelta(hours=10)
    lines = list(backfill_lines(7, events, start, start + timedelta(hours=1)))
    replayed = build_archive(lines, root, "raw")
    raw = root / "raw" / f"region={REGION}" / f"dt={DAY:%Y-%m-%d}" / "hour=10"
    ndjson = sum(len(gzip.decompress(p.read_bytes())) for p in raw.glob("*.gz"))
    return {"events": events, "replayed_events": replayed, "raw_ndjson_bytes": ndjson}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[300_000, 1_000_000, 3_000_000,
                                                                  6_000_000])  # fmt: skip
    parser.add_argument("--hour-events", type=int, default=3_000_000)
    args = parser.parse_args()
    report: dict[str, object] = {"sizes": [build_size(n) for n in args.sizes]}
    report["hour"] = build_hour(args.hour_events)
    (DATA / "data.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
