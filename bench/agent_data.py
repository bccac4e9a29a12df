"""Build the agent benchmark data under bench/data/ (gitignored): about 1 GB of raw logs.

    python bench/agent_data.py [--events 2900000]

One day of `generate` output (seed 42, 2025-01-01) laid out three ways:
- node/: a node's log folder as rotation leaves it (live + `.1` plain, older files `.N.gz`);
- archive-raw/: the archive layout, two raw gzip objects per hour;
- archive-compacted/: the same day after `agent compact` (run against a local moto S3
  server), i.e. one compacted.parquet per hour and no raw objects.
"""

import argparse
import gzip
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
REGION = "bench"


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(lines).encode()
    path.write_bytes(gzip.compress(data, compresslevel=6) if path.suffix == ".gz" else data)


def build_raw(events: int) -> int:
    """Write node/ and archive-raw/; returns the raw (uncompressed) size in bytes."""
    lines = list(backfill_lines(42, events, DAY, DAY + timedelta(days=1)))
    per_file = -(-len(lines) // NODE_FILES)
    # Oldest first: the oldest chunk is the highest-numbered .gz, the newest is the live file.
    for index, start in enumerate(range(0, len(lines), per_file)):
        age = NODE_FILES - 1 - index
        name = "application.log" + ("" if age == 0 else ".1" if age == 1 else f".{age}.gz")
        _write(DATA / "node" / name, lines[start : start + per_file])
    by_hour: dict[int, list[str]] = {}
    for line in lines:
        by_hour.setdefault(int(line[line.index('"time_local": "') + 26 :][:2]), []).append(line)
    for hour, hour_lines in by_hour.items():
        folder = (
            DATA / "archive-raw" / f"region={REGION}" / f"dt={DAY:%Y-%m-%d}" / f"hour={hour:02d}"
        )
        half = len(hour_lines) // 2
        _write(folder / "part-a.gz", hour_lines[:half])
        _write(folder / "part-b.gz", hour_lines[half:])
    return sum(len(line) for line in lines)


def build_compacted() -> None:
    """Upload archive-raw/ to a local moto S3 server, run the compactor, download its output."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = make_client(f"http://{host}:{port}", "us-east-1")
        client.create_bucket(Bucket="bench")
        raw_root = DATA / "archive-raw"
        for path in sorted(raw_root.rglob("*.gz")):
            client.upload_file(str(path), "bench", "logs/" + path.relative_to(raw_root).as_posix())
        Compactor(client, "bench", "logs/", timedelta(0)).run_once()
        for item in client.list_objects_v2(Bucket="bench", Prefix="logs/")["Contents"]:
            if item["Key"].endswith("compacted.parquet"):
                target = DATA / "archive-compacted" / item["Key"].removeprefix("logs/")
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file("bench", item["Key"], str(target))
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2_900_000)
    args = parser.parse_args()
    for name in ("node", "archive-raw", "archive-compacted"):
        shutil.rmtree(DATA / name, ignore_errors=True)
    started = time.perf_counter()
    raw_bytes = build_raw(args.events)
    print(
        f"raw: {args.events} events, {raw_bytes / 1e9:.2f} GB uncompressed "
        f"({time.perf_counter() - started:.0f}s)"
    )
    started = time.perf_counter()
    build_compacted()
    print(f"compacted via moto S3 ({time.perf_counter() - started:.0f}s)")


if __name__ == "__main__":
    main()
