"""DuckDB's memory and threads follow the container's cgroup limits (pure logic)."""

from pathlib import Path

import pytest

from agent.budget import DEFAULT_CAP, MIB, READER_FLOOR, Budget, default_budget


def _cgroup(root: Path, memory: str | None, cpu: str | None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if memory is not None:
        (root / "memory.max").write_text(memory + "\n")
    if cpu is not None:
        (root / "cpu.max").write_text(cpu + "\n")
    return root


@pytest.mark.parametrize(
    ("memory", "cpu", "expected_bytes", "expected_threads"),
    [
        ("1073741824", "50000 100000", 512 << 20, 1),  # Memory: 1GB, CPU: "0.5"
        ("4294967296", "150000 100000", 2 << 30, 2),  # CPU 1.5 rounds up to 2 threads
        ("max", "max", DEFAULT_CAP, None),  # no limits: a modest default, every core
        (None, None, DEFAULT_CAP, None),  # no cgroup files at all
    ],
)
def test_budget_follows_the_container(
    tmp_path: Path,
    memory: str | None,
    cpu: str | None,
    expected_bytes: int,
    expected_threads: int | None,
) -> None:
    import os

    budget = default_budget(root=_cgroup(tmp_path / "cg", memory, cpu))
    assert budget.memory_bytes == expected_bytes
    cores = os.cpu_count() or 1
    assert budget.threads == min(expected_threads or cores, cores)


def test_explicit_limit_wins(tmp_path: Path) -> None:
    root = _cgroup(tmp_path / "cg", "1073741824", None)
    assert default_budget(300 << 20, root=root).memory_bytes == 300 << 20


def test_the_reader_gets_its_share_but_never_less_than_its_buffers_need() -> None:
    assert Budget(2048 * MIB, 2).reader(share=4) == Budget(512 * MIB, 2)
    assert Budget(2048 * MIB, 2).reader(share=2) == Budget(1024 * MIB, 2)
    assert Budget(2048 * MIB, 2).reader(share=1) == Budget(2048 * MIB, 2)
    assert Budget(512 * MIB, 1).reader(share=4) == Budget(READER_FLOOR, 1)
    # A floor of the caller's (agent/query.py SANDBOX_READER_FLOOR) replaces the reader's own.
    assert Budget(512 * MIB, 1).reader(share=4, floor=384 * MIB) == Budget(384 * MIB, 1)
    assert Budget(4096 * MIB, 2).reader(share=4, floor=384 * MIB) == Budget(1024 * MIB, 2)
