"""Per-node outcomes of a query job, merged into one table with ``node`` and ``region`` columns.

A node's output is never shown as complete unless it is: a truncated stdout keeps the rows that
parsed and marks them, and a node that failed or never ran is reported, not dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra.ops.states import execution_state

Row = dict[str, Any]
# Reads an execution's full stdout from where it was published; None when it was not.
PublishedReader = Callable[[Mapping[str, Any]], str | None]
TRUNCATED_COLUMN = "truncated"


@dataclass
class NodeOutcome:
    node: str
    region: str
    rows: list[Row] = field(default_factory=list)
    problem: str | None = None
    truncated: bool = False
    note: str | None = None

    @property
    def complete(self) -> bool:
        return self.problem is None and not self.truncated


def outcomes_of(
    executions: Sequence[Mapping[str, Any]],
    region_of: Mapping[str, str],
    read_published: PublishedReader | None = None,
) -> list[NodeOutcome]:
    """One outcome per execution, skipping executions Bacalhau replaced by a retry."""
    outcomes = []
    for execution in executions:
        if execution.get("NextExecution"):
            continue
        node = str(execution.get("NodeID") or "?")
        outcome = NodeOutcome(node, region_of.get(node, "?"))
        _fill(outcome, execution, read_published)
        outcomes.append(outcome)
    return outcomes


def missing_outcomes(
    expected: Mapping[str, str], outcomes: Sequence[NodeOutcome], why: Mapping[str, str]
) -> list[NodeOutcome]:
    """Nodes in scope (node -> region) that ran nothing, each with the reason when known."""
    ran = {outcome.node for outcome in outcomes}
    return [
        NodeOutcome(node, region, problem=f"no execution ({why.get(node, 'node not matched')})")
        for node, region in sorted(expected.items())
        if node not in ran
    ]


def merge(outcomes: Sequence[NodeOutcome]) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows across nodes, in node order; the first columns say where a row came
    from, and ``truncated`` appears when some node's rows are incomplete."""
    columns = ["node", "region"]
    marked = any(outcome.truncated for outcome in outcomes)
    for outcome in outcomes:
        for row in outcome.rows:
            columns.extend(key for key in row if key not in columns)
    if marked:
        columns.append(TRUNCATED_COLUMN)
    rows = []
    for outcome in sorted(outcomes, key=lambda o: (o.region, o.node)):
        for row in outcome.rows:
            values = {**row, "node": outcome.node, "region": outcome.region}
            if marked:
                values[TRUNCATED_COLUMN] = outcome.truncated
            rows.append([values.get(column) for column in columns])
    return columns, rows


def _fill(
    outcome: NodeOutcome, execution: Mapping[str, Any], read_published: PublishedReader | None
) -> None:
    state = execution_state(execution)
    output = execution.get("RunOutput") or {}
    if state != "Completed":
        detail = output.get("ErrorMsg") or _message(execution) or "no error message"
        outcome.problem = f"execution {state.lower()}: {detail}"
        return
    if output.get("ExitCode", 0) != 0:
        outcome.problem = f"query exited {output['ExitCode']}: {output.get('stderr', '').strip()}"
        return
    stdout = str(output.get("Stdout") or "")
    if output.get("StdoutTruncated"):
        full = _published(outcome, execution, read_published)
        if full is None:
            outcome.truncated = True
            outcome.rows = _complete_rows(stdout)
            return
        stdout = full
    try:
        rows = json.loads(stdout)
    except ValueError:
        outcome.problem = f"output is not the agent's JSON: {stdout[:80]!r}"
        return
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        outcome.problem = "output is not a JSON array of row objects"
        return
    outcome.rows = rows


def _published(
    outcome: NodeOutcome, execution: Mapping[str, Any], read_published: PublishedReader | None
) -> str | None:
    published = execution.get("PublishedResult")
    if read_published is None or not isinstance(published, Mapping):
        outcome.note = "no published copy of the full output"
        return None
    try:
        full = read_published(published)
    except Exception as error:  # any S3 or parse failure leaves the output marked truncated
        outcome.note = f"reading the published output failed: {error}"
        return None
    if full is None:
        outcome.note = "the published result is not on S3"
    else:
        outcome.note = "the orchestrator truncated stdout; read the full output from S3"
    return full


def _complete_rows(text: str) -> list[Row]:
    """The row objects that arrived whole before the cut in a truncated JSON array."""
    decoder = json.JSONDecoder()
    rows: list[Row] = []
    position = text.find("[") + 1
    if position == 0:
        return rows
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        try:
            row, position = decoder.raw_decode(text, position)
        except ValueError:
            return rows
        if isinstance(row, dict):
            rows.append(row)


def _message(execution: Mapping[str, Any]) -> str:
    state = execution.get("ComputeState")
    return str(state.get("Message") or "") if isinstance(state, Mapping) else ""
