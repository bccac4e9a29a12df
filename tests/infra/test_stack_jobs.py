"""The stack's long-running jobs as v1.9.3 schedules them: the compactor survives having no node,
and two Logstash executions on one node never share path.data."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.paths import JOBS_DIR

# Go's time.Duration is an int64 of nanoseconds: seconds beyond this overflow when multiplied by
# time.Second (pkg/models/timeout.go GetQueueTimeout).
MAX_GO_DURATION_SECONDS = (2**63 - 1) // 10**9
YEAR = 365 * 24 * 3600


def job(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((JOBS_DIR / f"{name}.yaml").read_text())
    return document


def fails_for_good(*, age_seconds: int, queue_timeout: int) -> bool:
    """v1.9.3's verdict when a batch or service job has fewer matching nodes than partitions to
    place: pkg/orchestrator/scheduler/batch_service_job.go createMissingExecs marks the job failed
    if ``Job.CreateTime`` is before now - QueueTimeout, else queues a delayed evaluation. The job
    store keeps CreateTime on every update (pkg/jobstore/boltdb/store.go updateJob)."""
    return age_seconds > queue_timeout


def test_compactor_waits_for_a_node_instead_of_failing() -> None:
    """A service job gets no queue timeout from the job defaults
    (pkg/orchestrator/transformer/job.go applyLongRunningTaskDefaults sets only Resources), so
    with none set the first evaluation without a connected node of its region fails it for good;
    node joins re-evaluate only daemon jobs and jobs with executions on that node
    (pkg/orchestrator/nodes/reevaluator.go processEventBatch). A lost node fails the execution
    (scheduler/types.go groupByNodeHealth) and the retry needs a node again."""
    task = job("compactor")["Tasks"][0]
    timeout = int((task.get("Timeouts") or {}).get("QueueTimeout") or 0)
    assert not fails_for_good(age_seconds=600, queue_timeout=timeout), "nodes still booting"
    # A node lost years after registration: the job's age counts, not the time spent waiting.
    assert not fails_for_good(age_seconds=5 * YEAR, queue_timeout=timeout)
    assert timeout <= MAX_GO_DURATION_SECONDS
    # pkg/models/timeout.go Validate: with a TotalTimeout, queue + execution must fit in it.
    assert "TotalTimeout" not in task["Timeouts"]


def test_the_queue_rule_itself() -> None:
    assert fails_for_good(age_seconds=1, queue_timeout=0)


@pytest.mark.parametrize("name", ["logstash", "compactor", "generate-logs"])
def test_job_headers_say_how_to_run_them_by_hand(name: str) -> None:
    """`bacalhau job run --template-vars` on the raw file fails on every node (undefined env:
    variables, empty values): the header points at the renderer instead."""
    header = (JOBS_DIR / f"{name}.yaml").read_text().split("\nName:", 1)[0]
    assert f"python -m infra.jobs render {name} --stack" in header
    assert "--template-vars" not in header


def _wrapper(tmp_path: Path, wait_seconds: int = 300) -> list[str]:
    """The Logstash job's entrypoint with its two fixed paths moved into ``tmp_path``."""
    entrypoint = list(job("logstash")["Tasks"][0]["Engine"]["Params"]["Entrypoint"])
    script = entrypoint[2]
    assert "/usr/share/logstash/data/" in script and "/usr/local/bin/docker-entrypoint" in script
    script = script.replace("/usr/share/logstash/data", str(tmp_path / "data"))
    script = script.replace("/usr/local/bin/docker-entrypoint", str(tmp_path / "logstash"))
    script = script.replace("--wait 300", f"--wait {wait_seconds}")
    return [*entrypoint[:2], script, *entrypoint[3:]]


FAKE_LOGSTASH = """#!/bin/bash
# Stands in for the image's entrypoint: logs its start, runs until SIGTERM, logs that too.
trap 'echo "term $INSTANCE" >> "$LOG"; exit 0' TERM
echo "start $INSTANCE" >> "$LOG"
while true; do sleep 0.05; done
"""


def _start(tmp_path: Path, instance: str, wait_seconds: int = 300) -> subprocess.Popen[str]:
    env = {**os.environ, "INSTANCE": instance, "LOG": str(tmp_path / "log")}
    return subprocess.Popen(
        _wrapper(tmp_path, wait_seconds), env=env, text=True, stderr=subprocess.PIPE
    )


def _log(tmp_path: Path) -> list[str]:
    path = tmp_path / "log"
    return path.read_text().splitlines() if path.exists() else []


def _wait_for(tmp_path: Path, line: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while line not in _log(tmp_path):
        if time.monotonic() > deadline:
            pytest.fail(f"{line!r} not logged within {seconds}s: {_log(tmp_path)}")
        time.sleep(0.05)


@pytest.fixture
def fake_logstash(tmp_path: Path) -> Path:
    if shutil.which("flock") is None:
        pytest.fail("flock (util-linux) is required: the Logstash image's entrypoint uses it")
    (tmp_path / "data").mkdir()
    fake = tmp_path / "logstash"
    fake.write_text(FAKE_LOGSTASH)
    fake.chmod(0o755)
    return tmp_path


def test_a_new_logstash_waits_until_the_old_one_is_gone(fake_logstash: Path) -> None:
    """The daemon scheduler cancels the old execution and creates the new one in one plan
    (pkg/orchestrator/scheduler/daemon_job.go handlePreviousVersionsExecutions, then
    createMissingExecs), so both containers can start together on a node."""
    old = _start(fake_logstash, "old")
    new = None
    try:
        _wait_for(fake_logstash, "start old")
        new = _start(fake_logstash, "new")
        time.sleep(1.0)
        assert _log(fake_logstash) == ["start old"], "the new one started beside the old one"
        # What Docker's stop does to PID 1: the wrapper exec'd Logstash, so it gets the signal.
        old.send_signal(signal.SIGTERM)
        assert old.wait(timeout=10) == 0
        _wait_for(fake_logstash, "start new")
        assert _log(fake_logstash) == ["start old", "term old", "start new"]
    finally:
        for process in (old, new):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_a_stuck_old_logstash_fails_the_new_one_with_a_reason(fake_logstash: Path) -> None:
    old = _start(fake_logstash, "old")
    try:
        _wait_for(fake_logstash, "start old")
        new = _start(fake_logstash, "new", wait_seconds=1)
        _, stderr = new.communicate(timeout=10)
        assert new.returncode == 75
        assert "another Logstash still holds" in stderr
        assert _log(fake_logstash) == ["start old"]
    finally:
        old.kill()
        old.wait()
