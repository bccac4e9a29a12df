"""Wait for a submitted job to finish, reporting each poll and keeping a hard deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.bacalhau.client import BacalhauClient
from infra.bacalhau.states import TERMINAL_JOB_STATES, job_state

# Called after every poll with the job's state, its executions and the seconds waited so far.
PollReport = Callable[[str, list[dict[str, Any]], float], None]


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


def wait_for_job(
    client: BacalhauClient,
    job_id: str,
    timeout: float,
    report: PollReport,
    polling: Polling = Polling(),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Finished:
    started = clock()
    deadline = started + timeout
    interval = polling.first
    while True:
        job = client.get_job(job_id)
        if job is None:
            raise JobVanished(f"the orchestrator no longer knows job {job_id}")
        version = job.get("Version")
        # An update would leave older versions' executions behind; only the current one counts.
        executions = client.list_executions(job_id, version if isinstance(version, int) else None)
        state = job_state(job)
        report(state, executions, clock() - started)
        if state in TERMINAL_JOB_STATES:
            return Finished(job, executions)
        if clock() + interval > deadline:
            raise JobTimeout(job_id, state, timeout)
        sleep(interval)
        interval = min(interval * polling.factor, polling.longest)
