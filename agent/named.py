"""Built-in queries for `query --named`, each against the `logs` view, with their merge rules.

Each query is written once as its grouped SELECT (the *partial* query a node runs when its rows
are merged with other nodes') plus a merge rule: how groups combine (sums, minima, maxima), then
the HAVING bound, ORDER BY and LIMIT applied to the combined groups. A node's own answer is the
same rule applied to its rows alone, so `NAMED_SQL` is generated from the same definition and
cannot drift from what `infra.ops` computes across nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agent.events import COPIES, OK

DEFAULT_LIMIT = 10
DEFAULT_THRESHOLD = 1000
# The document `query --partial` prints (agent/partial.py) and `infra.ops` reads.
PARTIAL_FORMAT = "bacalhau-logs.partial/1"


class Named(StrEnum):
    """The closed set of built-in query names."""

    ERROR_ANALYSIS = "error-analysis"
    CONTENT_ANALYSIS = "content-analysis"
    PEAK_TRAFFIC = "peak-traffic"
    SECURITY_ANALYSIS = "security-analysis"
    TOP_REFERRING_SITES = "top-referring-sites"
    UNAUTHORIZED_IPS = "unauthorized-ips"
    THROTTLED_IPS = "throttled-ips"
    DATA_VOLUME = "data-volume"
    TOP_USER_AGENTS = "top-user-agents"


class Combine(StrEnum):
    """How one column of partial rows combines across nodes; each is exact for its SQL twin
    (count and integer sum add up, min and max of minima and maxima)."""

    SUM = "sum"
    MIN = "min"
    MAX = "max"


@dataclass(frozen=True)
class OrderTerm:
    column: int
    descending: bool = False
    # DuckDB's default is NULLS LAST in both directions (`default_null_order`).
    nulls_first: bool = False


@dataclass(frozen=True)
class MergeRule:
    """Columns by position: ``keys`` identify a group, ``values`` combine; then rows whose
    ``above`` columns are not greater than their bound are dropped, the rest are sorted by
    ``order`` and cut to ``offset``/``limit``."""

    keys: tuple[int, ...]
    values: tuple[tuple[int, Combine], ...]
    above: tuple[tuple[int, int], ...] = ()
    order: tuple[OrderTerm, ...] = ()
    limit: int | None = None
    offset: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "keys": list(self.keys),
            "values": [[column, combine.value] for column, combine in self.values],
            "above": [list(pair) for pair in self.above],
            "order": [[t.column, t.descending, t.nulls_first] for t in self.order],
            "limit": self.limit,
            "offset": self.offset,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MergeRule:
        """The rule a node sent; raises ValueError (naming the field) on anything else."""
        try:
            rule = cls(
                keys=tuple(_index(k) for k in data["keys"]),
                values=tuple((_index(c), Combine(op)) for c, op in data["values"]),
                above=tuple((_index(c), _integer(b)) for c, b in data.get("above") or []),
                order=tuple(
                    OrderTerm(_index(c), bool(d), bool(n)) for c, d, n in data.get("order") or []
                ),
                limit=None if data.get("limit") is None else _index(data["limit"]),
                offset=_index(data.get("offset") or 0),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"merge rule: {error!r} in {dict(data)!r}") from None
        return rule


@dataclass(frozen=True)
class NamedQuery:
    """A grouped SELECT over `logs`: one expression per column of ``columns`` (``select``), an
    optional WHERE condition, GROUP BY ``keys``; and how to finish it (combine, HAVING bound,
    ORDER BY, LIMIT)."""

    columns: tuple[str, ...]
    select: tuple[str, ...]
    keys: tuple[str, ...]
    values: tuple[tuple[str, Combine], ...]
    order: tuple[tuple[str, bool], ...]
    where: str = ""
    limited: bool = False
    # (column, parameter): keep groups whose column is greater than the parameter's value.
    above: tuple[tuple[str, str], ...] = ()

    @property
    def partial_sql(self) -> str:
        """The grouped SELECT, before HAVING/ORDER BY/LIMIT: what a node sends for merging."""
        selected = ", ".join(f"{e} AS {c}" for e, c in zip(self.select, self.columns, strict=True))
        text = f"SELECT {selected} FROM logs"
        if self.where:
            text += f" WHERE {self.where}"
        if self.keys:
            text += " GROUP BY " + ", ".join(self.keys)
        return text

    def sql(self) -> str:
        """The single-node query; `$limit` and `$threshold` are bound parameters."""
        return self.partial_sql + self._finish(having=True)

    def _finish(self, having: bool) -> str:
        text = ""
        if self.above:
            conditions = " AND ".join(f"{c} > ${p}" for c, p in self.above)
            text += f" {'HAVING' if having else 'AND'} {conditions}"
        if self.order:
            terms = (f"{c} {'DESC' if d else 'ASC'} NULLS LAST" for c, d in self.order)
            text += " ORDER BY " + ", ".join(terms)
        if self.limited:
            text += " LIMIT $limit"
        return text

    def grouping_sql(self, source: str) -> str:
        """One scan of `source` (rows of agent/events.py `identities_sql`, with `_ok` and
        COPIES) that gives both this query's groups and the reader's counts: GROUPING SETS
        groups every row by `_ok` alone (`__set` 1, the first key not grouped: `__rows` events
        or malformed rows, `__lines` the lines they came from) and the valid rows inside the
        WHERE by the keys too (`__set` 0, `__in`). Only for queries with keys."""
        if not self.keys:
            raise ValueError("grouping_sql needs a query with GROUP BY keys")
        inside = f"{OK} AND coalesce({self.where}, false)" if self.where else OK
        # Outside the WHERE every key is NULL: those rows make one group, not one per key,
        # which keeps the hash table as small as the query's own. The grouping sets name
        # expressions, not aliases: DuckDB resolves a GROUP BY name to the source's column
        # first (`request`), which would group every row by its own value.
        expressions = {
            c: f"CASE WHEN {inside} THEN {e} END" if c in self.keys else e
            for e, c in zip(self.select, self.columns, strict=True)
        }
        selected = ", ".join(f"{e} AS {c}" for c, e in expressions.items())
        keys = ", ".join(expressions[k] for k in self.keys)
        return (
            f"SELECT {OK} AS __ok, {inside} AS __in, {selected}, "
            f"count(*) AS __rows, sum({COPIES}) AS __lines, "
            f"grouping({expressions[self.keys[0]]}) AS __set "
            f"FROM ({source}) "
            f"GROUP BY GROUPING SETS (({OK}), ({OK}, {inside}, {keys}))"
        )

    def valid_grouping_sql(self, source: str) -> str:
        """`grouping_sql`'s groups (`__set` 0) for a `source` whose rows are all valid (compacted
        files): the plain grouped SELECT, a third of the cost of grouping sets."""
        return (
            f"SELECT 0 AS __set, true AS __in, * FROM (WITH logs AS ({source}) {self.partial_sql})"
        )

    def from_groups(self, table: str, partial: bool) -> str:
        """This query's rows from a table of `grouping_sql`'s: the partial rows, or the answer
        (HAVING as a condition on the groups, ORDER BY, LIMIT)."""
        text = f"SELECT {', '.join(self.columns)} FROM {table} WHERE __set = 0 AND __in"
        return text if partial else text + self._finish(having=False)

    def rule(self, limit: int, threshold: int) -> MergeRule:
        parameters = {"limit": limit, "threshold": threshold}
        position = {name: index for index, name in enumerate(self.columns)}
        return MergeRule(
            keys=tuple(position[k] for k in self.keys),
            values=tuple((position[c], how) for c, how in self.values),
            above=tuple((position[c], parameters[p]) for c, p in self.above),
            order=tuple(OrderTerm(position[c], d) for c, d in self.order),
            limit=limit if self.limited else None,
        )


DESC, ASC = True, False


def _top(column: str, expression: str, where: str, value: str = "requests") -> NamedQuery:
    """``SELECT <expression> AS <column>, count(*) AS <value> ... GROUP BY`` ranked by count."""
    return NamedQuery(
        columns=(column, value),
        select=(expression, "count(*)"),
        where=where,
        keys=(column,),
        values=((value, Combine.SUM),),
        order=((value, DESC), (column, ASC)),
        limited=True,
    )


NAMED_QUERIES: dict[Named, NamedQuery] = {
    Named.ERROR_ANALYSIS: _top("request", "request", "status = 404"),
    # A file is a path (query string dropped) ending in an extension, served in full.
    Named.CONTENT_ANALYSIS: NamedQuery(
        columns=("file", "downloads", "bytes"),
        select=("split_part(request, '?', 1)", "count(*)", "sum(body_bytes_sent)"),
        where=(
            "status = 200 AND http_method = 'GET' "
            "AND regexp_matches(split_part(request, '?', 1), '/[^/]+\\.[A-Za-z0-9]{2,5}$')"
        ),
        keys=("file",),
        values=(("downloads", Combine.SUM), ("bytes", Combine.SUM)),
        order=(("downloads", DESC), ("file", ASC)),
        limited=True,
    ),
    Named.PEAK_TRAFFIC: NamedQuery(
        columns=("hour", "requests"),
        select=("date_trunc('hour', time_local)", "count(*)"),
        keys=("hour",),
        values=(("requests", Combine.SUM),),
        order=(("hour", ASC),),
    ),
    # Every address goes into the partial rows: one under the threshold on each node may be
    # over it in total.
    Named.SECURITY_ANALYSIS: NamedQuery(
        columns=("remote_addr", "requests", "denied", "not_found", "throttled"),
        select=(
            "remote_addr",
            "count(*)",
            "count(*) FILTER (WHERE status IN (401, 403))",
            "count(*) FILTER (WHERE status = 404)",
            "count(*) FILTER (WHERE status = 429)",
        ),
        keys=("remote_addr",),
        values=tuple((c, Combine.SUM) for c in ("requests", "denied", "not_found", "throttled")),
        order=(("requests", DESC), ("remote_addr", ASC)),
        above=(("requests", "threshold"),),
    ),
    Named.TOP_REFERRING_SITES: _top("referrer", "http_referer", "http_referer NOT IN ('', '-')"),
    Named.UNAUTHORIZED_IPS: _top("remote_addr", "remote_addr", "status = 403"),
    Named.THROTTLED_IPS: _top("remote_addr", "remote_addr", "status = 429"),
    Named.DATA_VOLUME: NamedQuery(
        columns=("requests", "total_bytes", "first_event", "last_event"),
        select=(
            "count(*)",
            "coalesce(sum(body_bytes_sent), 0)",
            "min(time_local)",
            "max(time_local)",
        ),
        keys=(),
        values=(
            ("requests", Combine.SUM),
            ("total_bytes", Combine.SUM),
            ("first_event", Combine.MIN),
            ("last_event", Combine.MAX),
        ),
        order=(),
    ),
    Named.TOP_USER_AGENTS: _top("user_agent", "http_user_agent", ""),
}

# `$limit` and `$threshold` are bound as parameters, never formatted into the text.
NAMED_SQL: dict[Named, str] = {name: query.sql() for name, query in NAMED_QUERIES.items()}


def named_parameters(sql: str, limit: int, threshold: int) -> dict[str, int]:
    """The parameters a named query's text refers to."""
    values = {"limit": limit, "threshold": threshold}
    return {name: value for name, value in values.items() if f"${name}" in sql}


def _index(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value
