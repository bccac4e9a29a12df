"""Agent benchmarks, run by hand after `python bench/agent_data.py` (results: docs/bench-agent.md).

    python bench/agent_bench.py [--repeat 3]

Every query is timed as the job runs it: a fresh `python -m agent query` process, wall clock,
median of `--repeat` runs. Each comparison is measured side by side in this one run.
"""

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bench" / "data"
sys.path.insert(0, str(REPO))

from agent.generate import backfill_lines  # noqa: E402
from agent.times import parse_instant  # noqa: E402

CPU_SECONDS: dict[str, float] = {}


def _timed(command: list[str], repeat: int) -> tuple[float, str]:
    """Median wall time of `command` and its stdout (from the last run).

    The median CPU time (user + sys) is kept in CPU_SECONDS too: the machine is shared, and
    CPU time is less disturbed by other load than wall time.
    """
    times, cpu, stdout = [], [], ""
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        stdout = result.stdout
    CPU_SECONDS[" ".join(command[3:])] = statistics.median(cpu)
    return statistics.median(times), stdout


def _query(logs: Path, repeat: int, *args: str) -> tuple[float, list[dict[str, object]]]:
    command = [sys.executable, "-m", "agent", "query", "--logs", str(logs), "--format", "json"]
    seconds, stdout = _timed([*command, *args], repeat)
    return seconds, json.loads(stdout)


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "loadavg_at_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def bench_generator(events: int) -> dict[str, float]:
    """Backfill events/s: in-process (one core) and as the CLI writing a file."""
    start, end = parse_instant("2025-01-01T00:00:00"), parse_instant("2025-01-02T00:00:00")
    started = time.perf_counter()
    count = sum(1 for _ in backfill_lines(1, events, start, end))
    in_process = count / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "agent", "generate", "--count", str(events),
                   "--start", "2025-01-01", "--end", "2025-01-02",
                   "--output", f"{scratch}/out.log"]  # fmt: skip
        seconds, _ = _timed(command, 1)
    return {"events": events, "in_process_per_s": in_process, "cli_per_s": events / seconds}


def original_approach(node: Path) -> tuple[float, int, int]:
    """The original example: gunzip each .gz next to itself, then read_json everything.

    Runs on a copy so the benchmark data stays as it is. Returns (seconds, events, 404s).
    """
    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        copy = Path(scratch) / "logs"
        shutil.copytree(node, copy)
        started = time.perf_counter()
        for path in copy.glob("*.gz"):
            with gzip.open(path, "rb") as source, open(path.with_suffix(""), "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
        con = duckdb.connect()
        row = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 404) "
            f"FROM read_json('{copy}/*', format = 'newline_delimited')"
        ).fetchall()[0]
        seconds = time.perf_counter() - started
    return seconds, int(row[0]), int(row[1])


def bench_node_folder(repeat: int, truth: int) -> dict[str, object]:
    node = DATA / "node"
    ours_s, ours = _query(node, repeat, "--sql",
                          "SELECT count(*) AS events, count(*) FILTER (WHERE status = 404) AS e404 "
                          "FROM logs")  # fmt: skip
    original = [original_approach(node) for _ in range(repeat)]
    orig_s = statistics.median(o[0] for o in original)
    return {
        "generated_events": truth,
        "agent_s": ours_s,
        "agent_events": ours[0]["events"],
        "agent_404": ours[0]["e404"],
        "original_s": orig_s,
        "original_events": original[-1][1],
        "original_404": original[-1][2],
    }


def bench_archive(repeat: int) -> dict[str, object]:
    raw, compacted = DATA / "archive-raw", DATA / "archive-compacted"
    hour = ("--since", "2025-01-01T14:00:00", "--until", "2025-01-01T15:00:00")
    named = ("--named", "top-referring-sites")
    hour_s, hour_rows = _query(raw, repeat, *named, *hour)
    day_s, day_rows = _query(raw, repeat, *named)
    parquet_s, parquet_rows = _query(compacted, repeat, *named)
    volume = ("--named", "data-volume")
    _, raw_volume = _query(raw, 1, *volume)
    _, parquet_volume = _query(compacted, 1, *volume)
    return {
        "hour_s": hour_s,
        "day_raw_s": day_s,
        "day_parquet_s": parquet_s,
        "hour_vs_day": day_s / hour_s,
        "parquet_vs_gz": day_s / parquet_s,
        "answers_identical": day_rows == parquet_rows and raw_volume == parquet_volume,
        "hour_requests_top": hour_rows[0],
        "day_top": day_rows[:3],
        "day_volume": raw_volume[0],
    }


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--generator-events", type=int, default=1_000_000)
    args = parser.parse_args()
    results: dict[str, object] = {"machine": machine()}
    results["sizes_bytes"] = {
        name: _size(DATA / name) for name in ("node", "archive-raw", "archive-compacted")
    }
    results["generator"] = bench_generator(args.generator_events)
    # The number of generated events, as agent_data.py reported it.
    data_log = (REPO / "bench" / "out" / "agent_data.log").read_text()
    truth = int(data_log.split("raw: ", 1)[1].split(" events", 1)[0])
    results["node_folder"] = bench_node_folder(args.repeat, truth)
    results["archive"] = bench_archive(args.repeat)
    results["query_cpu_seconds"] = CPU_SECONDS
    results["loadavg_at_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
