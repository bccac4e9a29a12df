"""Run one query job per region, concurrently, and collect every node's outcome.

Each region's job reads only that region's data and publishes only to that region's bucket;
only answers travel to the operator. A region that times out or whose job the orchestrator
refuses is reported on its own while the other regions' answers are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from infra.bacalhau.client import BacalhauAPIError, BacalhauClient, OrchestratorUnreachable
from infra.bacalhau.spec import JobSpec
from infra.bacalhau.states import execution_state, job_state
from infra.ops import status
from infra.ops.progress import Progress
from infra.ops.render import Kind
from infra.ops.results import (
    NodeOutcome,
    PublishedReader,
    latest_attempts,
    missing_outcomes,
    outcome_of,
    progress_counts,
)
from infra.ops.scope import HOST_LABEL
from infra.ops.wait import JobTimeout, JobVanished, Polling, wait_for_job

# Nodes (name shown -> why it may not have run) that should answer for a region, from the
# live node list; empty for batch jobs, which answer once per region.
ExpectedNodes = Callable[[str, Sequence[Mapping[str, Any]]], dict[str, str]]


@dataclass(frozen=True)
class RegionJob:
    region: str
    job: JobSpec
    read_published: PublishedReader | None


@dataclass
class RegionResult:
    region: str
    job_id: str | None = None
    outcomes: list[NodeOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The orchestrator refused or could not be reached (exit 1), or the job outlived --timeout.
    error: str | None = None
    timed_out: bool = False


def run_regions(
    client: BacalhauClient,
    kind: Kind,
    jobs: Sequence[RegionJob],
    expected: ExpectedNodes,
    timeout: float,
    progress: Progress,
    polling: Polling,
) -> list[RegionResult]:
    def run(region_job: RegionJob) -> RegionResult:
        result = RegionResult(region_job.region)
        try:
            _run_one(client, kind, region_job, expected, timeout, progress, polling, result)
        except JobTimeout as timeout_error:
            result.timed_out = True
            result.error = str(timeout_error)
        except (BacalhauAPIError, OrchestratorUnreachable, JobVanished) as error:
            result.error = str(error)
        return result

    with ThreadPoolExecutor(max_workers=max(len(jobs), 1)) as pool:
        results = list(pool.map(run, jobs))
    progress.close()
    return results


def _run_one(
    client: BacalhauClient,
    kind: Kind,
    region_job: RegionJob,
    expected: ExpectedNodes,
    timeout: float,
    progress: Progress,
    polling: Polling,
    result: RegionResult,
) -> None:
    region = region_job.region
    result.job_id = client.put_job(region_job.job, None, force=False)
    progress.note(f"{region}: submitted {region_job.job['Name']} as job {result.job_id}")

    def report(state: str, executions: list[dict[str, Any]], elapsed: float) -> None:
        counts = progress_counts(executions, kind)
        text = (
            f"job {state}; nodes {counts['done']} done, {counts['running']} running, "
            f"{counts['failed']} failed"
        )
        if counts["retried"]:
            text += f", {counts['retried']} attempts retried"
        progress.update(region, text, elapsed)

    finished = wait_for_job(client, result.job_id, timeout, report, polling)
    nodes = client.list_nodes()
    names = {str((n.get("Info") or {}).get("NodeID")): _shown_name(n) for n in nodes}
    current, replaced = latest_attempts(finished.executions, kind)
    for execution in current:
        node = names.get(str(execution.get("NodeID")), str(execution.get("NodeID") or "?"))
        result.outcomes.append(outcome_of(execution, node, region, region_job.read_published))
    for execution in replaced:
        node = names.get(str(execution.get("NodeID")), str(execution.get("NodeID") or "?"))
        output = execution.get("RunOutput") or {}
        why = output.get("ErrorMsg") or execution_state(execution).lower()
        result.notes.append(f"an attempt on node {node} ended {why}; a retry replaced it")
    ran = [outcome.node for outcome in result.outcomes]
    missing = missing_outcomes(expected(region, nodes), ran, region)
    # The scheduler's own reason (v1.9.3 puts "not enough nodes ... • Node X: why" in the job
    # state's Message) is what an operator needs when a node never got an execution.
    reason = _one_line(str((finished.job.get("State") or {}).get("Message") or ""))
    for outcome in missing:
        if reason:
            outcome.problem = f"{outcome.problem}; job {job_state(finished.job)}: {reason}"
    result.outcomes += missing
    if not result.outcomes:
        problem = f"no execution; job {job_state(finished.job)}: {reason or '-'}"
        result.outcomes.append(NodeOutcome("-", region, problem=problem))


def _one_line(message: str) -> str:
    return "; ".join(line.strip(" •") for line in message.splitlines() if line.strip(" •"))


def _shown_name(node: Mapping[str, Any]) -> str:
    """The stack's name for a node (its host label) when it has one, else its node ID."""
    labels = (node.get("Info") or {}).get("Labels") or {}
    return str(labels.get(HOST_LABEL) or status.node_name(node))
