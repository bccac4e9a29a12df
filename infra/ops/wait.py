"""Wait for a submitted job to finish, with progress on stderr and a hard deadline."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from infra.bacalhau.client import BacalhauClient
from infra.ops.states import TERMINAL_JOB_STATES, execution_state, job_state


@dataclass(frozen=True)
class Polling:
    """Backoff between polls: quick answers for quick queries, few calls for slow ones."""

    first: float = 1.0
    factor: float = 1.5
    longest: float = 10.0


class JobTimeout(RuntimeError):
    def __init__(self, job_id: str, state: str, timeout: float) -> None:
        super().__init__(
            f"job {job_id} did not finish within {timeout:g}s (still {state}); it keeps running. "
            f"Look later with: bacalhau job describe {job_id}"
        )
        self.job_id = job_id


class JobVanished(RuntimeError):
    """The orchestrator no longer knows the job it accepted."""


@dataclass(frozen=True)
class Finished:
    job: dict[str, Any]
    executions: list[dict[str, Any]]


def current_executions(
    job: dict[str, Any], executions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The executions of the job's current version (an update may leave older ones behind)."""
    version = job.get("Version")
    return [e for e in executions if version is None or e.get("JobVersion") == version]


def wait_for_job(
    client: BacalhauClient,
    job_id: str,
    timeout: float,
    progress: TextIO,
    polling: Polling = Polling(),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Finished:
    started = clock()
    deadline = started + timeout
    interval = polling.first
    last_line = ""
    while True:
        job = client.get_job(job_id)
        if job is None:
            raise JobVanished(f"the orchestrator no longer knows job {job_id}")
        executions = current_executions(job, client.list_executions(job_id))
        state = job_state(job)
        line = _progress_line(job_id, state, executions)
        if line != last_line:
            progress.write(f"{line} [{clock() - started:.0f}s]\n")
            last_line = line
        if state in TERMINAL_JOB_STATES:
            return Finished(job, executions)
        if clock() + interval > deadline:
            raise JobTimeout(job_id, state, timeout)
        sleep(interval)
        interval = min(interval * polling.factor, polling.longest)


def _progress_line(job_id: str, state: str, executions: list[dict[str, Any]]) -> str:
    counts = Counter(execution_state(e) for e in executions)
    summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none yet"
    return f"job {job_id}: {state}; executions: {summary}"
