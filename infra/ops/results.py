"""What each execution of a query job answered, and which execution counts for a node.

A node's answer is the agent's partial document (agent/partial.py). Bacalhau v1.9.3 returns at
most 2 KiB of an execution's stdout over the API (``MaxStdoutReturnLength``, pkg/system/utils.go,
cut on the compute node by executor.WriteJobResults, pkg/executor/results.go); the query jobs
publish the whole result directory to the region's bucket, so a longer answer is read from there.
An answer that arrives neither way is a problem for that node, never a silently short table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra.bacalhau.states import execution_state
from infra.ops.merge import PartialAnswer, parse_answer
from infra.ops.render import Kind

# Reads one file (``stdout``, ``stderr``) of an execution's published result; None when the
# result was not published to S3.
PublishedReader = Callable[[Mapping[str, Any], str], str | None]
Execution = Mapping[str, Any]
_DONE = "Completed"
_FAILED = frozenset({"Failed", "Cancelled", "BidRejected", "AskForBidRejected"})


@dataclass
class NodeOutcome:
    node: str
    region: str
    answer: PartialAnswer | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.problem is None and self.answer is not None


def latest_attempts(
    executions: Sequence[Execution], kind: Kind
) -> tuple[list[Execution], list[Execution]]:
    """The executions that count, and those a retry replaced.

    v1.9.3 never sets ``NextExecution`` (pkg/models/execution.go declares it; nothing assigns
    it), so replaced attempts are found by grouping: an ops job runs once per matching node and
    is not retried (OpsJobScheduler.createMissingExecs, pkg/orchestrator/scheduler/ops_job.go),
    so its group is the node; a batch job retries a failed partition, usually on another node
    (BatchServiceJobScheduler, batch_service_job.go), so its group is the PartitionIndex. In a
    group, the execution that completed counts, else the newest by CreateTime.
    """
    groups: dict[Any, list[Execution]] = {}
    for execution in executions:
        key = execution.get("NodeID") if kind is Kind.OPS else execution.get("PartitionIndex", 0)
        groups.setdefault(key, []).append(execution)
    current: list[Execution] = []
    replaced: list[Execution] = []
    for attempts in groups.values():
        ordered = sorted(attempts, key=lambda e: (e.get("CreateTime") or 0, e.get("Revision") or 0))
        done = [e for e in ordered if execution_state(e) == _DONE]
        chosen = done[-1] if done else ordered[-1]
        current.append(chosen)
        replaced.extend(e for e in ordered if e is not chosen)
    return current, replaced


def progress_counts(executions: Sequence[Execution], kind: Kind) -> dict[str, int]:
    """Nodes done, running and failed (latest attempts), and attempts a retry replaced."""
    current, replaced = latest_attempts(executions, kind)
    states = [execution_state(e) for e in current]
    done = states.count(_DONE)
    failed = sum(state in _FAILED for state in states)
    return {
        "done": done,
        "running": len(states) - done - failed,
        "failed": failed,
        "retried": len(replaced),
    }


def outcome_of(
    execution: Execution, node: str, region: str, read_published: PublishedReader | None
) -> NodeOutcome:
    outcome = NodeOutcome(node, region)
    state = execution_state(execution)
    output = execution.get("RunOutput") or {}
    if state != _DONE:
        detail = output.get("ErrorMsg") or _message(execution) or "no error message"
        outcome.problem = f"execution {state.lower()}: {detail}"
        return outcome
    if output.get("ExitCode", 0) != 0:
        stderr = _full(execution, "stderr", read_published, output) or ""
        last = [line for line in stderr.splitlines() if line.strip()][-1:] or ["no stderr"]
        outcome.problem = f"query exited {output['ExitCode']}: {last[0].strip()}"
        return outcome
    stdout = str(output.get("Stdout") or "")
    answer, error = _parse(stdout) if not output.get("StdoutTruncated") else (None, "truncated")
    if answer is None:
        # The API's copy is cut at 2 KiB, and may be shorter still without StdoutTruncated:
        # executor.writeOutputResult fills it with a single Read call, which returns one write
        # of the process (seen with v1.9.3: 83 of 6,358 bytes, StdoutTruncated false). The
        # published copy is the whole file.
        try:
            full = _published(execution, "stdout", read_published)
        except Exception as failure:  # any S3 failure: this node's answer is missing
            outcome.problem = (
                "its answer is longer than the API returns, and reading the published copy "
                f"failed: {failure}"
            )
            return outcome
        if full is None:
            outcome.problem = f"its answer did not arrive whole ({error}) and was not published"
            return outcome
        answer, error = _parse(full)
        if answer is None:
            outcome.problem = f"the published answer is not the agent's document: {error}"
            return outcome
        outcome.notes.append("the API's copy of its answer was cut; read it whole from the bucket")
    outcome.answer = answer
    return outcome


def missing_outcomes(
    expected: Mapping[str, str], ran: Sequence[str], region: str
) -> list[NodeOutcome]:
    """Nodes in scope (name -> why it may not have run) that ran nothing."""
    return [
        NodeOutcome(node, region, problem=f"no execution ({why})")
        for node, why in sorted(expected.items())
        if node not in ran
    ]


def _parse(text: str) -> tuple[PartialAnswer | None, str]:
    try:
        return parse_answer(text), ""
    except ValueError as error:
        return None, str(error) or "not JSON"


def _full(
    execution: Execution,
    name: str,
    read_published: PublishedReader | None,
    output: Mapping[str, Any],
) -> str | None:
    if output.get("StderrTruncated"):
        try:
            published = _published(execution, name, read_published)
        except Exception:  # the cut copy below is still worth showing
            published = None
        if published is not None:
            return published
    return str(output.get("stderr") or output.get("Stderr") or "")


def _published(
    execution: Execution, name: str, read_published: PublishedReader | None
) -> str | None:
    published = execution.get("PublishedResult")
    if read_published is None or not isinstance(published, Mapping) or not published.get("Type"):
        return None
    return read_published(published, name)


def _message(execution: Execution) -> str:
    state = execution.get("ComputeState")
    return str(state.get("Message") or "") if isinstance(state, Mapping) else ""
