"""How much memory and how many threads DuckDB may use, from the container's own limits.

A Bacalhau job runs in a container whose cgroup caps memory and CPU; DuckDB's defaults (80 % of
the host's memory, one thread per host core) would ignore that and get the job OOM-killed.
The limits are read from cgroup v2 (`memory.max`, `cpu.max`), else v1, else the host.
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
# DuckDB gets this share of the container's memory; Python, Arrow buffers and the parquet
# writer live in the rest.
DUCKDB_SHARE = 0.5
# Without a container limit (a laptop, the benchmark host), stay modest all the same.
DEFAULT_CAP = 1024 * MIB
FLOOR = 64 * MIB
# The trusted reader's least: DuckDB's JSON reader alone takes up to 2 x 16 MiB per thread.
READER_FLOOR = 256 * MIB

_CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Budget:
    """DuckDB settings for one process: total memory for DuckDB and worker threads."""

    memory_bytes: int
    threads: int

    def reader(self, share: int, floor: int = READER_FLOOR) -> "Budget":
        """The trusted reader's part (agent/stream.py), 1/`share` of this budget but never
        less than `floor`, at least what its buffers need. It streams, and spills beyond its
        part; the shares and floors, and what they were measured to cost, are agent/query.py's
        and agent/cli.py's."""
        return Budget(max(self.memory_bytes // share, floor), self.threads)


def container_memory(root: Path = _CGROUP) -> int | None:
    """The cgroup memory limit in bytes, or None when there is none."""
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (root / name).read_text().strip()
        except OSError:
            continue
        # v2 says "max"; v1 says a huge number close to 2**63 when unlimited.
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
        return None
    return None


def container_cpus(root: Path = _CGROUP) -> float | None:
    """The cgroup CPU quota in cores (0.5 for `CPU: "0.5"`), or None when there is none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu/cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 else quota_us / period_us


def default_budget(memory_limit: int | None = None, root: Path = _CGROUP) -> Budget:
    """The budget for this process: `memory_limit` if given, else a share of the container."""
    cores = os.cpu_count() or 1
    quota = container_cpus(root)
    threads = max(1, min(cores, math.ceil(quota))) if quota else cores
    if memory_limit is None:
        limit = container_memory(root)
        memory_limit = int(limit * DUCKDB_SHARE) if limit else DEFAULT_CAP
    return Budget(max(FLOOR, memory_limit), threads)
