"""`query --partial`: one JSON document per node that `infra.ops` merges into one exact answer.

A named query sends its grouped rows before HAVING/ORDER BY/LIMIT plus its merge rule
(agent/named.py). Ad-hoc SQL is parsed with DuckDB's own parser (``json_serialize_sql``, no data
touched): a plain aggregation over ``logs`` (GROUP BY plus count/sum/min/max) is sent the same way
with ORDER BY/LIMIT taken off and turned into the rule; anything else runs as written and is sent
with ``merge: false`` and the reason, so the operator sees per-node rows and why.

The document also carries what the node read (files by kind, bytes) and the query's own
diagnostics (malformed lines, damaged files), which a 2 KiB stderr cut would otherwise hide.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from agent.discover import Window
from agent.named import (
    NAMED_QUERIES,
    PARTIAL_FORMAT,
    Combine,
    MergeRule,
    Named,
    NamedQuery,
    OrderTerm,
)

_MERGEABLE_AGGREGATES = {
    "count_star": Combine.SUM,
    "count": Combine.SUM,
    "sum": Combine.SUM,
    "min": Combine.MIN,
    "max": Combine.MAX,
}
_MALFORMED = re.compile(r"([\d,]+) malformed lines? skipped")
_POSITION_KEYS = frozenset({"alias", "query_location", "query_location_length"})


@dataclass(frozen=True)
class Plan:
    """The SQL a node runs and, when its rows are partial, the rule that finishes them."""

    sql: str
    parameters: Mapping[str, object] = field(default_factory=dict)
    rule: MergeRule | None = None
    # Why rows from several nodes cannot be combined exactly (None: they can).
    not_mergeable: str | None = None
    # A named query's, which the reader may answer itself (agent/query.py, Trusted).
    named: NamedQuery | None = None


def named_plan(named: Named, limit: int, threshold: int) -> Plan:
    query = NAMED_QUERIES[named]
    return Plan(query.partial_sql, {}, query.rule(limit, threshold), named=query)


def sql_plan(sql: str) -> Plan:
    """Partial SQL and rule for a plain aggregation; otherwise the SQL as written and why not."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        answer = con.execute("SELECT json_serialize_sql($sql)", {"sql": sql}).fetchone()
        tree = json.loads(str(answer[0])) if answer else {"error": True}
        if tree.get("error") or len(tree.get("statements") or []) != 1:
            return Plan(sql, not_mergeable="not a single SELECT statement")
        node = tree["statements"][0]["node"]
        null_order = con.execute("SELECT current_setting('default_null_order')").fetchone()
        aggregates = {
            str(row[0])
            for row in con.execute(
                "SELECT DISTINCT function_name FROM duckdb_functions() "
                "WHERE function_type = 'aggregate'"
            ).fetchall()
        }
        nulls_first = str(null_order[0] if null_order else "").upper() == "NULLS_FIRST"
        try:
            rule = _analyse(node, aggregates, nulls_first)
        except _NotMergeable as reason:
            return Plan(sql, not_mergeable=str(reason))
        node["modifiers"] = []
        rebuilt = con.execute("SELECT json_deserialize_sql($tree)", {"tree": json.dumps(tree)})
        partial = rebuilt.fetchone()
        return Plan(str(partial[0]) if partial else sql, {}, rule)
    except duckdb.Error:
        # The node reports the real error when it runs the SQL as written.
        return Plan(sql, not_mergeable="DuckDB could not parse it")
    finally:
        con.close()


def write_partial(
    logs: Path, plan: Plan, window: Window, stdout: TextIO, stderr: TextIO, *bounds: object
) -> int:
    """Run ``plan`` over ``logs`` and write the document; 1 with a message on a query error.
    ``bounds`` go to ``run_query`` after its diagnostics stream (its limits and layout), so a
    partial query is held to the same time, memory and row bounds as any other."""
    from agent.query import Cancelled, QueryError, Trusted, run_query

    diagnostics = _Tee(stderr)
    trusted = Trusted(plan.named, partial=True) if plan.named is not None else None
    try:
        result = run_query(
            logs, plan.sql, plan.parameters, window, diagnostics, *bounds, trusted=trusted
        )
    except Cancelled as error:
        stderr.write(f"query: {error}\n")
        return 128 + error.signum
    except QueryError as error:
        stderr.write(f"query: error: {error}\n")
        return 1
    not_mergeable = plan.not_mergeable
    if plan.rule is not None:
        inexact = [
            result.columns[column]
            for column, how in plan.rule.values
            if how is Combine.SUM and any(_inexact(row[column]) for row in result.rows)
        ]
        if inexact:
            not_mergeable = f"a sum over non-integer values ({', '.join(inexact)}) is not exact"
    lines = diagnostics.lines()
    document = {
        "format": PARTIAL_FORMAT,
        "columns": result.columns,
        "rows": [list(row) for row in result.rows],
        "rule": plan.rule.to_json() if plan.rule is not None else None,
        "merge": plan.rule is not None and not_mergeable is None,
        "reason": not_mergeable,
        "inputs": input_summary(logs),
        "diagnostics": lines,
        "malformed_lines": malformed_count(lines),
    }
    json.dump(document, stdout, default=_plain)
    stdout.write("\n")
    return 0


def input_summary(root: Path) -> dict[str, int]:
    """What the node had to read: files and bytes under ``root`` by kind. For a batch job this
    is exactly what Bacalhau downloaded from the region's bucket."""
    summary = {"files": 0, "bytes": 0, "compacted": 0, "raw": 0, "plain": 0}
    for path, size in _files(root):
        summary["files"] += 1
        summary["bytes"] += size
        summary[_kind(path)] += 1
    return summary


def _kind(name: str) -> str:
    if name.endswith(".parquet"):
        return "compacted"
    return "raw" if name.endswith(".gz") else "plain"


def malformed_count(lines: list[str]) -> int | None:
    """Malformed lines the query skipped, from its summary line; None when it said nothing."""
    counts = [int(m.group(1).replace(",", "")) for line in lines for m in _MALFORMED.finditer(line)]
    return sum(counts) if counts else None


class _NotMergeable(Exception):
    pass


def _analyse(node: Mapping[str, Any], aggregates: set[str], nulls_first: bool) -> MergeRule:
    if node.get("type") != "SELECT_NODE":
        raise _NotMergeable("not a plain SELECT (set operations are not merged)")
    if (node.get("cte_map") or {}).get("map"):
        raise _NotMergeable("WITH clauses are not merged")
    source = node.get("from_table") or {}
    if source.get("type") != "BASE_TABLE" or str(source.get("table_name", "")).lower() != "logs":
        raise _NotMergeable("it does not read the `logs` view directly")
    for clause in ("having", "qualify", "sample"):
        if node.get(clause):
            raise _NotMergeable(f"{clause.upper()} is not merged")
    if any(_found(node, lambda n: n.get("class") in ("SUBQUERY", "WINDOW"))):
        raise _NotMergeable("subqueries and window functions are not merged")
    if len(node.get("group_sets") or []) > 1:
        raise _NotMergeable("GROUPING SETS, ROLLUP and CUBE are not merged")
    items = node.get("select_list") or []
    keys, values = _classify(items, aggregates)
    if not values and not node.get("group_expressions"):
        raise _NotMergeable("it is not an aggregation (no GROUP BY, count, sum, min or max)")
    if node.get("aggregate_handling") != "FORCE_AGGREGATES":
        for expression in node.get("group_expressions") or []:
            if _select_index(expression, items) not in keys:
                raise _NotMergeable("every GROUP BY expression must be a selected column")
    order, limit, offset = _modifiers(node.get("modifiers") or [], items, nulls_first)
    return MergeRule(tuple(keys), tuple(values), (), order, limit, offset)


def _classify(
    items: list[Mapping[str, Any]], aggregates: set[str]
) -> tuple[list[int], list[tuple[int, Combine]]]:
    keys: list[int] = []
    values: list[tuple[int, Combine]] = []
    for index, item in enumerate(items):
        name = str(item.get("function_name", "")).lower()
        if item.get("class") == "FUNCTION" and name in _MERGEABLE_AGGREGATES:
            if item.get("distinct") or (item.get("order_bys") or {}).get("orders"):
                raise _NotMergeable(f"{name}(DISTINCT ...) or ordered aggregates are not merged")
            values.append((index, _MERGEABLE_AGGREGATES[name]))
        elif any(_found(item, lambda n: str(n.get("function_name", "")).lower() in aggregates)):
            raise _NotMergeable(
                f"column {index + 1} uses an aggregate other than a bare count, sum, min or max"
            )
        elif item.get("class") == "STAR":
            raise _NotMergeable("SELECT * is not an aggregation")
        else:
            keys.append(index)
    return keys, values


def _modifiers(
    modifiers: list[Mapping[str, Any]], items: list[Mapping[str, Any]], nulls_first: bool
) -> tuple[tuple[OrderTerm, ...], int | None, int]:
    order: list[OrderTerm] = []
    limit: int | None = None
    offset = 0
    for modifier in modifiers:
        kind = modifier.get("type")
        if kind == "ORDER_MODIFIER":
            for term in modifier.get("orders") or []:
                index = _select_index(term.get("expression") or {}, items)
                if index is None:
                    raise _NotMergeable("ORDER BY must name selected columns")
                null_order = term.get("null_order")
                first = null_order == "NULLS_FIRST" or (
                    null_order == "ORDER_DEFAULT" and nulls_first
                )
                order.append(OrderTerm(index, term.get("type") == "DESCENDING", first))
        elif kind == "LIMIT_MODIFIER" and modifier.get("limit_type", "ROW_COUNT") == "ROW_COUNT":
            limit = _constant(modifier.get("limit"), "LIMIT")
            offset = _constant(modifier.get("offset"), "OFFSET") or 0
        else:
            raise _NotMergeable(f"{str(kind).replace('_MODIFIER', '')} is not merged")
    if limit is not None and not order:
        raise _NotMergeable("LIMIT without ORDER BY keeps arbitrary rows")
    return tuple(order), limit, offset


def _select_index(expression: Mapping[str, Any], items: list[Mapping[str, Any]]) -> int | None:
    """Which select item an ORDER BY or GROUP BY term means: by position, alias or equality."""
    if expression.get("class") == "CONSTANT":
        literal = expression.get("literal") or {}
        text = str(literal.get("text", ""))
        if literal.get("kind") in ("INTEGER", "BIGINT") and text.isdigit():
            position = int(text) - 1
            return position if 0 <= position < len(items) else None
        return None
    names = expression.get("column_names") or []
    if expression.get("class") == "COLUMN_REF" and len(names) == 1:
        for index, item in enumerate(items):
            if item.get("alias") and item["alias"].lower() == names[0].lower():
                return index
    bare = _without_positions(expression)
    for index, item in enumerate(items):
        if _without_positions(item) == bare:
            return index
    return None


def _constant(expression: Any, clause: str) -> int | None:
    if expression is None:
        return None
    literal = expression.get("literal") or {} if isinstance(expression, Mapping) else {}
    text = str(literal.get("text", ""))
    if expression.get("class") != "CONSTANT" or not text.isdigit():
        raise _NotMergeable(f"{clause} must be a whole number")
    return int(text)


def _without_positions(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_positions(v) for k, v in value.items() if k not in _POSITION_KEYS}
    if isinstance(value, list):
        return [_without_positions(v) for v in value]
    return value


def _found(value: Any, test: Any) -> Iterator[bool]:
    if isinstance(value, Mapping):
        yield bool(test(value))
        for child in value.values():
            yield from _found(child, test)
    elif isinstance(value, list):
        for child in value:
            yield from _found(child, test)


def _inexact(value: object) -> bool:
    """Floating-point sums depend on the order of addition; DECIMAL ones lose digits in JSON."""
    return isinstance(value, float | Decimal)


def _files(root: Path) -> Iterator[tuple[str, int]]:
    for directory, folders, names in os.walk(root):
        folders[:] = [f for f in folders if not f.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            try:
                yield name, os.stat(os.path.join(directory, name)).st_size
            except OSError:
                continue


def _plain(value: object) -> object:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


class _Tee(io.StringIO):
    """Passes the query's diagnostics through to stderr and keeps them for the document."""

    def __init__(self, sink: TextIO) -> None:
        super().__init__()
        self._sink = sink

    def write(self, text: str) -> int:
        self._sink.write(text)
        return super().write(text)

    def lines(self) -> list[str]:
        return [line for line in self.getvalue().splitlines() if line.strip()]
