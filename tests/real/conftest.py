"""The real Bacalhau cluster, shared by every test in this folder (see cluster.py).

The binary must exist: the test command builds it (scripts/build-bacalhau). A missing binary is
a failure, never a skip. When a test here fails, the tail of every node's log is attached to
its report; the full logs stay in pytest's temporary folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.real.cluster import BUILD_SCRIPT, Cluster, binary_path

REGIONS = {"eu-1": 1, "us-1": 2}


@pytest.fixture(scope="session")
def bacalhau_binary() -> Path:
    binary = binary_path()
    if not binary.exists():
        pytest.fail(
            f"Bacalhau binary not found at {binary}: run {BUILD_SCRIPT} (scripts/test does)",
            pytrace=False,
        )
    return binary


@pytest.fixture(scope="session")
def cluster(bacalhau_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(
        binary=bacalhau_binary,
        workdir=tmp_path_factory.mktemp("bacalhau-cluster"),
        regions=REGIONS,
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    clusters = [
        value for value in getattr(item, "funcargs", {}).values() if isinstance(value, Cluster)
    ]
    if report.failed:
        for running in clusters:
            report.sections.append(("bacalhau node logs", running.logs()))
    return report
