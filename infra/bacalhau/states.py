"""Job and execution states as the v1.9.3 API spells them: job states as names
(JobStateType.MarshalText, pkg/models/job.go), execution states as the enum's numbers
(ExecutionStateType has no MarshalText, pkg/models/execution.go). Both are read either way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# models.JobStateType and models.ExecutionStateType in the v1.9.3 API spec, in enum order.
JOB_STATES = ("Undefined", "Pending", "Queued", "Running", "Completed", "Failed", "Stopped")
EXECUTION_STATES = (
    "Undefined",
    "New",
    "AskForBid",
    "AskForBidAccepted",
    "AskForBidRejected",
    "BidAccepted",
    "Running",
    "Publishing",
    "BidRejected",
    "Completed",
    "Failed",
    "Cancelled",
)
TERMINAL_JOB_STATES = frozenset({"Completed", "Failed", "Stopped"})
TERMINAL_EXECUTION_STATES = frozenset({"Completed", "Failed", "Cancelled", "BidRejected"})


def job_state(job: Mapping[str, Any]) -> str:
    return _name(job.get("State"), JOB_STATES)


def execution_state(execution: Mapping[str, Any]) -> str:
    return _name(execution.get("ComputeState"), EXECUTION_STATES)


def _name(state: Any, names: tuple[str, ...]) -> str:
    value = state.get("StateType") if isinstance(state, Mapping) else None
    if isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return str(value) if value is not None else "Undefined"
