"""Benchmark of the Logstash Ruby filters: events/s of the edge aggregation (with a geoip
stand-in, with and without its crash journal) and of the event identity filter, under MRI or the
JRuby the pinned Logstash bundles, and bytes sent to OpenSearch per hour against raw bytes at
1,000 events/s on one node. By hand:

    .venv/bin/python bench/logstash_bench.py [--ruby jruby|mri] [--seconds 600] [--window 60]

Logs come from `python -m agent generate` (backfill mode) at 1,000 events per second of log
time; the Ruby side runs in bench/logstash_bench.rb. JRuby comes from tests/logstash/jruby.py
(Maven Central, cached in .cache/jruby/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RATE = 1000
# The harness holds every event in memory before timing; the filters themselves need little.
JRUBY_HEAP = "-Xmx5g"


def ruby_command(engine: str) -> list[str]:
    if engine == "mri":
        return ["ruby"]
    jar = subprocess.run(
        [sys.executable, str(REPO / "tests" / "logstash" / "jruby.py")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return ["java", JRUBY_HEAP, "-Djruby.compile.invokedynamic=true", "-jar", jar]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=600, help="log time to generate")
    parser.add_argument("--window", type=int, default=60, help="AGGREGATE_DURATION")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ruby", choices=["jruby", "mri"], default="jruby")
    args = parser.parse_args()

    data = BENCH_DIR / "data"
    data.mkdir(exist_ok=True)
    events = data / f"logstash-{args.seconds}s.ndjson"
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = start + timedelta(seconds=args.seconds)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "generate",
            "--seed",
            str(args.seed),
            "--count",
            str(RATE * args.seconds),
            "--start",
            start.strftime("%Y-%m-%dT%H:%M:%S"),
            "--end",
            end.strftime("%Y-%m-%dT%H:%M:%S"),
            "--output",
            str(events),
        ],
        check=True,
        cwd=REPO,
    )
    # Each mode in its own interpreter, one after the other: the journal's cost is the ratio.
    runs = {
        mode: json.loads(
            subprocess.run(
                [
                    *ruby_command(args.ruby),
                    str(BENCH_DIR / "logstash_bench.rb"),
                    str(events),
                    str(args.window),
                    mode,
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        for mode in ("journal", "memory")
    }
    result = runs["journal"]
    per_hour = 3600 / args.seconds
    raw_per_hour = result["raw_bytes"] * per_hour
    sent_per_hour = result["bulk_bytes"] * per_hour
    report = {
        **result,
        "log_seconds": args.seconds,
        "window_seconds": args.window,
        "raw_bytes_per_hour": round(raw_per_hour),
        "opensearch_bytes_per_hour": round(sent_per_hour),
        "reduction_percent": round(100 * (1 - sent_per_hour / raw_per_hour), 3),
        "without_journal": {
            key: runs["memory"][key]
            for key in ("cpu_events_per_second", "second_half_cpu_events_per_second")
        },
        "journal_cost": round(
            runs["memory"]["cpu_events_per_second"] / result["cpu_events_per_second"], 3
        ),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
