"""Agent benchmarks against a plain DuckDB query, run by hand after `bench/agent_data.py`.

    python bench/agent_bench.py [--repeat 5] > bench/out/agent_bench.json

Results: docs/bench-agent.md. Every comparison is side by side in this one run, each side a
fresh Python process (interpreter start included), the two sides alternating, timed by wall
clock and CPU time, with the process's own peak memory (GNU time's maximum resident set
size). The plain side is what issue 13 compares against: DuckDB reading only the columns the
query needs (`read_ndjson(..., columns=..., records=true)` or `read_parquet`) straight into
the aggregate, with DuckDB's defaults. It does not validate, salvage, de-duplicate or sandbox
anything; the agent does all of that, with the `--memory-limit` its job's container gives it
(`job_memory_limit`).
"""

import argparse
import functools
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bench" / "data"
PLAIN = (
    "import duckdb, json, sys; print(json.dumps(duckdb.sql(sys.argv[1]).fetchall(), default=str))"
)
TOP_REFERRERS = (
    "SELECT http_referer AS referrer, count(*) AS requests FROM {src} "
    "WHERE http_referer NOT IN ('', '-') GROUP BY referrer ORDER BY requests DESC, referrer "
    "LIMIT 10"
)
ERRORS_404 = (
    "SELECT request, count(*) AS requests FROM {src} WHERE status = 404 "
    "GROUP BY request ORDER BY requests DESC, request LIMIT 10"
)
NEEDED_404 = {"request": "VARCHAR", "status": "INTEGER"}
BY_STATUS = "SELECT status, count(*) AS n FROM {src} GROUP BY status ORDER BY status"
# Hours one compactor process compacts in its steady-state measurement.
SERVICE_HOURS = 4


def run(command: list[str]) -> dict[str, object]:
    """Wall and CPU seconds and peak RSS (MiB) of one child process, and its stdout.

    Wall and CPU time are this process's own measurements, to the microsecond: the clock
    around the child, and the CPU its children (GNU time and the command it waits for) used.
    GNU time reports both only to 10 ms, 3-7 % of a 0.15-0.3 s query. The peak RSS is GNU
    time's: a child forked from this (large) process would report this process's pages in
    its own peak RSS.
    """
    with tempfile.NamedTemporaryFile("r") as timing:
        timed = ["/usr/bin/time", "-f", "%M", "-o", timing.name, *command]
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        result = subprocess.run(timed, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss_kib = timing.read().split()[-1]
    if result.returncode:
        raise RuntimeError(f"{command[:6]} failed: {result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_mib": int(rss_kib) / 1024,
        "stdout": result.stdout,
        "stderr": result.stderr.strip().splitlines()[:2],
    }


def medians(runs: list[dict[str, object]]) -> dict[str, object]:
    best = {key: statistics.median(float(str(r[key])) for r in runs)
            for key in ("wall_s", "cpu_s", "rss_mib")}  # fmt: skip
    return {**best, "stdout": runs[-1]["stdout"], "stderr": runs[-1]["stderr"]}


def paired(ours: list[dict[str, object]], theirs: list[dict[str, object]], key: str) -> list[float]:
    """Each run's ratio to the run of the other side next to it in time, sorted. A drift in
    the machine between repeats (another tenant, the page cache) weighs on both runs of a
    pair alike, so the median of these is steadier than a ratio of medians."""
    pairs = zip(ours, theirs, strict=True)
    return sorted(float(str(a[key])) / float(str(b[key])) for a, b in pairs)


@functools.cache
def job_memory_limit(job: str) -> str:
    """The `--memory-limit` the agent gives itself inside `job`'s container (jobs/<job>.yaml
    Resources.Memory): DuckDB's share of it (agent/budget.py), so that the bench measures the
    agent as it is deployed rather than with its default for a host without limits."""
    import yaml

    sys.path.insert(0, str(REPO))
    from agent.budget import DUCKDB_SHARE
    from infra.capacity import parse_bytes

    spec = yaml.safe_load((REPO / "jobs" / f"{job}.yaml").read_text())
    memory = parse_bytes(str(spec["Tasks"][0]["Resources"]["Memory"]))
    return f"{int(memory * DUCKDB_SHARE) >> 20}MiB"


# A node's folder is read by ops jobs, an archive by batch jobs.
NODE_JOB, ARCHIVE_JOB = "queries/ops/error-analysis", "queries/batch/top-referring-sites"


def agent(logs: Path, *args: str, job: str = ARCHIVE_JOB) -> list[str]:
    limit = ("--memory-limit", job_memory_limit(job))
    return [sys.executable, "-m", "agent", "query", "--logs", str(logs), "--format", "json",
            *limit, *args]  # fmt: skip


def plain(sql: str) -> list[str]:
    return [sys.executable, "-c", PLAIN, sql]


def ndjson(files: list[Path], columns: dict[str, str]) -> str:
    spec = ", ".join(f"'{k}': '{v}'" for k, v in columns.items())
    return f"read_ndjson({[str(f) for f in files]!r}, columns = {{{spec}}}, records = true)"


def compare(name: str, ours: list[str], theirs: list[str], repeat: int) -> dict[str, object]:
    """Both commands `repeat` times, alternating, so that a change in the machine's state
    (another tenant, the page cache) weighs on both sides alike: medians of each side, and
    the ratios as the median of the pairs' (`paired`), with their spread."""
    runs: tuple[list[dict[str, object]], list[dict[str, object]]] = ([], [])
    for _ in range(repeat):
        runs[0].append(run(ours))
        runs[1].append(run(theirs))
    a, b = medians(runs[0]), medians(runs[1])
    return {
        "what": name,
        "agent": {k: a[k] for k in ("wall_s", "cpu_s", "rss_mib", "stderr")},
        "plain": {k: b[k] for k in ("wall_s", "cpu_s", "rss_mib")},
        "wall_ratio": statistics.median(paired(*runs, "wall_s")),
        "wall_ratios": paired(*runs, "wall_s"),
        "cpu_ratio": statistics.median(paired(*runs, "cpu_s")),
        "agent_rows": json.loads(str(a["stdout"]))[:3],
    }


def bench_size(root: Path, repeat: int) -> list[dict[str, object]]:
    node = root / "node"
    raw = root / "archive-raw"
    compacted = root / "archive-compacted"
    node_files = sorted(node.iterdir())
    day_raw = sorted(raw.rglob("*.gz"))
    hour_raw = sorted(raw.rglob("hour=14/*.gz"))
    day_parquet = sorted(compacted.rglob("*.parquet"))
    window = ("--since", "2025-01-01T14:00:00", "--until", "2025-01-01T15:00:00")
    parquet = f"read_parquet({[str(f) for f in day_parquet]!r})"
    return [
        compare(
            "node folder, named error-analysis",
            agent(node, "--named", "error-analysis", job=NODE_JOB),
            plain(
                ERRORS_404.format(
                    src=ndjson(node_files, {"request": "VARCHAR", "status": "INTEGER"})
                )
            ),
            repeat,
        ),
        compare(
            "node folder, --sql status counts",
            agent(node, "--sql", BY_STATUS.format(src="logs"), job=NODE_JOB),
            plain(BY_STATUS.format(src=ndjson(node_files, {"status": "INTEGER"}))),
            repeat,
        ),
        compare(
            "archive raw, one hour (14:00), top-referring-sites",
            agent(raw, "--named", "top-referring-sites", *window),
            plain(TOP_REFERRERS.format(src=ndjson(hour_raw, {"http_referer": "VARCHAR"}))),
            repeat,
        ),
        compare(
            "archive raw, whole day, top-referring-sites",
            agent(raw, "--named", "top-referring-sites"),
            plain(TOP_REFERRERS.format(src=ndjson(day_raw, {"http_referer": "VARCHAR"}))),
            repeat,
        ),
        compare(
            "archive compacted, whole day, top-referring-sites",
            agent(compacted, "--named", "top-referring-sites"),
            plain(TOP_REFERRERS.format(src=parquet)),
            repeat,
        ),
    ]


def bench_compact(
    hour: Path, raw_ndjson_bytes: int, events: int, repeat: int, hours: int = 1
) -> dict[str, object]:
    """`agent compact --once` on `hours` copies of one hour in a local moto S3 vs DuckDB-only
    in-memory COPY of as many hours in one process, alternating, `repeat` times each; medians.
    One hour is one process's whole life; with more, most of the time is the work each hour
    costs in the compactor's service job, which starts once. Each compaction gets a fresh
    bucket: moto keeps its buckets for the life of this process, and a second run over a
    compacted hour would find nothing to do."""
    from moto.server import ThreadedMotoServer

    sys.path.insert(0, str(REPO))
    from agent.s3 import make_client

    files = sorted(hour.rglob("*.gz"))
    typed = {"remote_addr": "VARCHAR", "remote_user": "VARCHAR", "time_local": "TIMESTAMP",
             "http_method": "VARCHAR", "request": "VARCHAR", "http_version": "VARCHAR",
             "status": "INTEGER", "body_bytes_sent": "BIGINT", "http_referer": "VARCHAR",
             "http_user_agent": "VARCHAR", "event_id": "VARCHAR"}  # fmt: skip
    ours: list[dict[str, object]] = []
    theirs: list[dict[str, object]] = []
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = make_client(endpoint, "us-east-1")
        with tempfile.TemporaryDirectory() as scratch:
            copy = "; ".join(
                f"COPY (SELECT * FROM {ndjson(files, typed)}) TO '{scratch}/x{n}.parquet' "
                "(FORMAT parquet, COMPRESSION zstd)"
                for n in range(hours)
            )
            for attempt in range(repeat):
                bucket = f"bench-{hours}-{attempt}"
                client.create_bucket(Bucket=bucket)
                for path, n in itertools.product(files, range(hours)):
                    relative = path.relative_to(hour).as_posix()
                    key = "logs/" + relative.replace("hour=10", f"hour={10 + n:02d}")
                    client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
                command = [
                    *(sys.executable, "-m", "agent", "compact", "--bucket", bucket),
                    *("--endpoint-url", endpoint, "--region-name", "us-east-1", "--once"),
                    *("--memory-limit", job_memory_limit("compactor")),
                ]
                ours.append(run(command))
                theirs.append(run(plain(copy)))
            their_size = Path(scratch, "x0.parquet").stat().st_size
        key = next(
            o["Key"]
            for o in client.list_objects_v2(Bucket=bucket)["Contents"]
            if o["Key"].endswith("compacted.parquet")
        )
        size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
    finally:
        server.stop()
    a, b = medians(ours), medians(theirs)
    return {
        "events": events,
        "hours": hours,
        "agent": {k: a[k] for k in ("wall_s", "cpu_s", "rss_mib", "stderr")}
        | {"wall_runs": [round(float(str(r["wall_s"])), 2) for r in ours]},
        "copy": {k: b[k] for k in ("wall_s", "cpu_s", "rss_mib")}
        | {"wall_runs": [round(float(str(r["wall_s"])), 2) for r in theirs]},
        "throughput_ratio": statistics.median(paired(theirs, ours, "wall_s")),
        "throughput_ratios": paired(theirs, ours, "wall_s"),
        "raw_ndjson_bytes": raw_ndjson_bytes,
        "compacted_bytes": size,
        "compression_ratio": raw_ndjson_bytes / size,
        "copy_bytes": their_size,
        "copy_compression_ratio": raw_ndjson_bytes / their_size,
    }


def machine() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")), "")
    memory = next(x for x in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in x)
    import duckdb
    import pyarrow

    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory": memory.split(":", 1)[1].strip(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "loadavg_at_start": os.getloadavg(),
    }


def _spread(ratios: object) -> str:
    return f"[{min(ratios):.2f}-{max(ratios):.2f}] " if isinstance(ratios, list) and ratios else ""


def table(results: dict[str, object]) -> str:
    """The results as the Markdown table of docs/bench-agent.md: one row per query, one
    column per size, each cell agent/plain wall seconds, wall ratio [the pairs' lowest and
    highest] (CPU ratio), memory."""
    queries = results["queries"]
    assert isinstance(queries, dict)
    sizes = list(queries)
    header = ["query", *(f"{int(n) / 1e6:g}M" for n in sizes)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for index, first in enumerate(queries[sizes[0]] if sizes else []):
        cells = [str(first["what"])]
        for size in sizes:
            row = queries[size][index]
            ours, theirs = row["agent"], row["plain"]
            cells.append(
                f"{ours['wall_s']:.2f}/{theirs['wall_s']:.2f} s {row['wall_ratio']:.2f}x "
                f"{_spread(row.get('wall_ratios'))}({row['cpu_ratio']:.2f}x), "
                f"{ours['rss_mib']:.0f}/{theirs['rss_mib']:.0f} MiB"
            )
        lines.append("| " + " | ".join(cells) + " |")
    for name in ("compact", "compact_service"):
        compact = results.get(name)
        if not isinstance(compact, dict):
            continue
        ours, theirs = compact["agent"], compact["copy"]
        lines.append("")
        lines.append(
            f"{name}, {compact.get('hours', 1)} hour(s) of {compact['events']} events "
            f"(median): {ours['wall_s']:.2f} s vs COPY {theirs['wall_s']:.2f} s, throughput "
            f"{compact['throughput_ratio']:.2f}x {_spread(compact.get('throughput_ratios'))}"
            f"(CPU {ours['cpu_s']:.2f} vs {theirs['cpu_s']:.2f} "
            f"s), {ours['rss_mib']:.0f}/{theirs['rss_mib']:.0f} MiB, Parquet "
            f"{compact['compression_ratio']:.1f}x smaller than the NDJSON; runs: agent "
            f"{ours.get('wall_runs')} s, COPY {theirs.get('wall_runs')} s"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", help="default: those built")
    parser.add_argument("--table", type=Path, help="print a results file as Markdown, run nothing")
    parser.add_argument("--compact-only", action="store_true", help="only the compactor")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    built = json.loads((DATA / "data.json").read_text())
    # As the agent's image does (agent/Dockerfile): with PYTHONDONTWRITEBYTECODE set, as on
    # the machine these figures come from, every run would compile the agent's modules again
    # (about 15 ms), while the plain side's DuckDB comes compiled with its wheel.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "agent")], check=True)
    sizes = args.sizes or [int(str(s["events"])) for s in built["sizes"]]
    results: dict[str, object] = {"machine": machine(), "data": built}
    results["queries"] = {
        str(n): bench_size(DATA / str(n), args.repeat) for n in ([] if args.compact_only else sizes)
    }
    hour = built["hour"]
    one = (DATA / "hour" / "raw", int(hour["raw_ndjson_bytes"]), int(hour["events"]))
    results["compact"] = bench_compact(*one, args.repeat)
    results["compact_service"] = bench_compact(*one, args.repeat, hours=SERVICE_HOURS)
    results["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
