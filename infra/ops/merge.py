"""One answer from many nodes: the agent's partial documents (agent/partial.py) combined.

Each node sends its groups before HAVING, ORDER BY and LIMIT, with the rule that finishes them.
Combining the groups of every node first and finishing once gives the answer a single query over
all nodes' events gives: a path that is 11th on every node can be 1st overall. A node's own answer
is the same rule applied to its rows alone, which is what ``--per-node`` shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.named import PARTIAL_FORMAT, Combine, MergeRule, OrderTerm

Row = list[Any]


@dataclass(frozen=True)
class PartialAnswer:
    """One node's document."""

    columns: list[str]
    rows: list[Row]
    rule: MergeRule | None
    mergeable: bool
    reason: str | None = None
    inputs: Mapping[str, int] = field(default_factory=dict)
    diagnostics: list[str] = field(default_factory=list)
    malformed_lines: int | None = None

    def own_rows(self) -> list[Row]:
        """What this node alone answers: its groups finished by the rule."""
        return finish(self.rule, [self.rows]) if self.rule is not None else self.rows


def parse_answer(text: str) -> PartialAnswer:
    """The document an agent printed; ValueError names what is wrong with it."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("format") != PARTIAL_FORMAT:
        raise ValueError(f"not a {PARTIAL_FORMAT} document")
    columns, rows = document.get("columns"), document.get("rows")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValueError("'columns' is not a list of names")
    if not isinstance(rows, list) or not all(
        isinstance(r, list) and len(r) == len(columns) for r in rows
    ):
        raise ValueError("'rows' is not a list of rows as wide as 'columns'")
    rule = MergeRule.from_json(document["rule"]) if document.get("rule") else None
    if rule is not None and max(_columns_of(rule), default=-1) >= len(columns):
        raise ValueError("the merge rule names a column the rows do not have")
    inputs = document.get("inputs") or {}
    malformed = document.get("malformed_lines")
    return PartialAnswer(
        columns=columns,
        rows=rows,
        rule=rule,
        mergeable=bool(document.get("merge")) and rule is not None,
        reason=str(document["reason"]) if document.get("reason") else None,
        inputs={str(k): int(v) for k, v in inputs.items() if isinstance(v, int)},
        diagnostics=[str(line) for line in document.get("diagnostics") or []],
        malformed_lines=malformed if isinstance(malformed, int) else None,
    )


def finish(rule: MergeRule, row_sets: Sequence[Sequence[Sequence[Any]]]) -> list[Row]:
    """Combine groups across row sets, then HAVING-style bounds, ORDER BY, OFFSET/LIMIT."""
    groups: dict[str, Row] = {}
    for rows in row_sets:
        for row in rows:
            key = json.dumps([row[k] for k in rule.keys], sort_keys=True, default=str)
            if key not in groups:
                groups[key] = list(row)
                continue
            merged = groups[key]
            for column, how in rule.values:
                merged[column] = _COMBINE[how](merged[column], row[column])
    result = [
        row
        for row in groups.values()
        if all(row[c] is not None and _order_key(row[c]) > _order_key(b) for c, b in rule.above)
    ]
    # Stable sorts from the last term to the first give the multi-column ORDER BY.
    for term in reversed(rule.order):
        result = _sorted(result, term)
    end = None if rule.limit is None else rule.offset + rule.limit
    return result[rule.offset : end]


@dataclass(frozen=True)
class Combined:
    """What to print: one merged table, or every node's own rows with node and region."""

    columns: list[str]
    rows: list[Row]
    merged: bool
    # Why the answer is per node although a merged one was asked for.
    notice: str | None = None


def combine(answers: Sequence[tuple[str, str, PartialAnswer]], per_node: bool) -> Combined:
    """``answers`` is (node, region, answer) for every node that answered in full."""
    if not answers:
        return Combined([], [], merged=not per_node)
    first = answers[0][2]
    reason = None if per_node else _why_not_merged([a for _, _, a in answers])
    if not per_node and reason is None and first.rule is not None:
        return Combined(first.columns, finish(first.rule, [a.rows for _, _, a in answers]), True)
    columns = ["node", "region"]
    for _, _, answer in answers:
        columns.extend(c for c in answer.columns if c not in columns)
    rows = []
    for node, region, answer in sorted(answers, key=lambda a: (a[1], a[0])):
        for row in answer.own_rows():
            values = {**dict(zip(answer.columns, row, strict=True)), "node": node}
            values["region"] = region
            rows.append([values.get(c) for c in columns])
    return Combined(columns, rows, merged=False, notice=reason)


def _why_not_merged(answers: Sequence[PartialAnswer]) -> str | None:
    for answer in answers:
        if not answer.mergeable:
            return answer.reason or "the query is not a plain aggregation"
    first = answers[0]
    if any(a.columns != first.columns or a.rule != first.rule for a in answers[1:]):
        return "the nodes answered with different columns or merge rules"
    return None


def _columns_of(rule: MergeRule) -> list[int]:
    return [
        *rule.keys,
        *(c for c, _ in rule.values),
        *(c for c, _ in rule.above),
        *(t.column for t in rule.order),
    ]


def _sum(left: Any, right: Any) -> Any:
    """SQL sum: NULLs are skipped; all NULL stays NULL."""
    if left is None:
        return right
    if right is None:
        return left
    return left + right


def _min(left: Any, right: Any) -> Any:
    if left is None or right is None:
        return right if left is None else left
    return right if _order_key(right) < _order_key(left) else left


def _max(left: Any, right: Any) -> Any:
    if left is None or right is None:
        return right if left is None else left
    return right if _order_key(right) > _order_key(left) else left


_COMBINE: dict[Combine, Callable[[Any, Any], Any]] = {
    Combine.SUM: _sum,
    Combine.MIN: _min,
    Combine.MAX: _max,
}


def _order_key(value: Any) -> tuple[int, Any]:
    """Values of one column compare as DuckDB compares them once they are JSON: numbers by
    value, text by code point (DuckDB compares UTF-8 bytes, which orders the same), times as the
    ISO strings they arrive as (one format per column, so text order is time order)."""
    if isinstance(value, bool | int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, json.dumps(value, sort_keys=True, default=str))


def _sorted(rows: list[Row], term: OrderTerm) -> list[Row]:
    present = [row for row in rows if row[term.column] is not None]
    missing = [row for row in rows if row[term.column] is None]
    present.sort(key=lambda row: _order_key(row[term.column]), reverse=term.descending)
    return missing + present if term.nulls_first else present + missing
