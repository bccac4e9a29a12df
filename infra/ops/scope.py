"""Validate what an operator asks for, before any API call: scope, query window, archive dates.

Every error names the flag and what it expects; the CLI turns them into exit code 2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from agent.times import EVENT_TIME_FORMAT, parse_instant

# Bacalhau v1.9.3 labels nodes with name=<node ID>, os_type and os_arch by default
# (pkg/node/labels.go), and a node's ID is its host name (NameProvider "hostname" in our node
# configs) which on EC2 is not the stack's node name. The stack sets this label to the node name
# it exports, so operators scope by the names they see in the `nodes` output.
HOST_LABEL = "host"
REGION_LABEL = "region"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH = re.compile(r"\d{4}-\d{2}")
_YEAR = re.compile(r"\d{4}")
# Pulumi's rule for stack names (alphanumerics, '-', '_', '.'; at most 100), stricter than a job
# name needs: the stack goes into job names, which the API also takes as URL path segments.
_STACK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# One S3 input per day: a range is read exactly, never through a wider prefix.
MAX_RANGE_DAYS = 366


class UsageError(ValueError):
    """A flag value the operator must fix; nothing was sent to the orchestrator."""


@dataclass(frozen=True)
class Scope:
    """The regions a job may run in and, when hosts were named, the only hosts it may run on."""

    regions: tuple[str, ...]
    hosts: tuple[str, ...] = ()

    def constraints(self) -> list[dict[str, Any]]:
        constraints: list[dict[str, Any]] = [
            {"Key": REGION_LABEL, "Operator": "in", "Values": list(self.regions)}
        ]
        if self.hosts:
            constraints.append({"Key": HOST_LABEL, "Operator": "in", "Values": list(self.hosts)})
        return constraints

    def only(self, region: str, region_of_host: Mapping[str, str]) -> Scope:
        """The part of this scope in one region (one job per region: each publishes to its
        own region's bucket, which only that region's nodes may write)."""
        return Scope((region,), tuple(h for h in self.hosts if region_of_host.get(h) == region))


def resolve_scope(
    known_regions: Sequence[str],
    regions: Sequence[str],
    hosts: Sequence[str],
    nodes_by_region: Mapping[str, Sequence[str]] | None,
) -> Scope:
    """The scope for ``--region``/``--host``; no flags means every region of the stack.

    ``nodes_by_region`` (the ``nodes`` output) checks host names when the stack exports it.
    """
    unknown = sorted(set(regions) - set(known_regions))
    if unknown:
        raise UsageError(
            f"--region: unknown region(s) {', '.join(unknown)}; "
            f"expected one of {', '.join(known_regions)}"
        )
    chosen = _unique(regions) or tuple(known_regions)
    if not hosts:
        return Scope(chosen)
    if nodes_by_region is None:
        raise UsageError(
            "--host: the stack output 'nodes' is missing, so host names cannot be checked; "
            "scope by --region instead"
        )
    region_of = {node: region for region, names in nodes_by_region.items() for node in names}
    unknown = sorted(set(hosts) - set(region_of))
    if unknown:
        raise UsageError(
            f"--host: unknown host(s) {', '.join(unknown)}; "
            f"expected node names from the stack output 'nodes': {', '.join(sorted(region_of))}"
        )
    outside = sorted(host for host in hosts if region_of[host] not in chosen)
    if outside:
        raise UsageError(
            f"--host: {', '.join(outside)} not in the chosen --region {', '.join(chosen)}"
        )
    # Only the hosts' regions: a region constraint wider than the hosts would match nothing more.
    host_regions = tuple(r for r in chosen if r in {region_of[h] for h in hosts})
    return Scope(host_regions, _unique(hosts))


@dataclass(frozen=True)
class Window:
    """A query's time window as ISO strings the agent's --since/--until accept; None is open."""

    since: str | None = None
    until: str | None = None


def resolve_window(since: str | None, until: str | None, now: datetime | None = None) -> Window:
    """Relative times (``15m``) are resolved here, once, so every node queries the same window."""
    start = _instant("--since", since, now)
    end = _instant("--until", until, now)
    if start and end and end <= start:
        raise UsageError(f"--until ({until}) must be after --since ({since})")
    return Window(_iso(start), _iso(end))


@dataclass(frozen=True)
class ArchiveRange:
    """What an archive query reads: ``prefix`` (a year, month or day: one S3 input listing
    ``dt=<prefix>*``) or ``days`` (a --from/--to range: one input per day, never a wider prefix
    such as ``dt=202*`` for 2024-12-31..2025-01-01)."""

    prefix: str | None = None
    days: tuple[str, ...] = ()
    window: Window = Window()

    @property
    def first(self) -> str:
        return self.prefix if self.prefix is not None else self.days[0]


def resolve_archive_range(day: str | None, start: str | None, end: str | None) -> ArchiveRange:
    if day is not None:
        if start is not None or end is not None:
            raise UsageError("--date cannot be combined with --from/--to")
        if not any(p.fullmatch(day) for p in (_DAY, _MONTH, _YEAR)) or not _valid(day):
            raise UsageError(f"--date: {day!r} is not a date; expected YYYY-MM-DD, YYYY-MM or YYYY")
        return ArchiveRange(prefix=day)
    if start is None or end is None:
        raise UsageError("archive needs --date D, or both --from D and --to D (YYYY-MM-DD)")
    first = _day("--from", start)
    last = _day("--to", end)
    if first > last:
        raise UsageError(f"--from ({start}) must not be after --to ({end})")
    count = (last - first).days + 1
    if count > MAX_RANGE_DAYS:
        raise UsageError(
            f"--from/--to: {count} days is more than {MAX_RANGE_DAYS}; "
            "use --date YYYY for a whole year or split the range"
        )
    days = tuple((first + timedelta(days=n)).isoformat() for n in range(count))
    window = Window(
        _iso(datetime.combine(first, datetime.min.time())),
        _iso(datetime.combine(last + timedelta(days=1), datetime.min.time())),
    )
    return ArchiveRange(days=days, window=window)


def check_stack(stack: str) -> str:
    if not _STACK.fullmatch(stack):
        raise UsageError(
            f"--stack: {stack!r} is not a stack name; expected letters, digits, '-', '_' or '.' "
            "(at most 100, starting with a letter or digit)"
        )
    return stack


def check_sql(sql: str | None) -> None:
    if sql is not None and not sql.strip():
        raise UsageError("--sql: empty; expected a SELECT against the `logs` view")


def _instant(flag: str, text: str | None, now: datetime | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text, now)
    except ValueError as error:
        raise UsageError(f"{flag}: {error}") from None


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime(EVENT_TIME_FORMAT) if moment else None


def _day(flag: str, text: str) -> date:
    if not _DAY.fullmatch(text) or not _valid(text):
        raise UsageError(f"{flag}: {text!r} is not a date; expected YYYY-MM-DD")
    return date.fromisoformat(text)


def _valid(text: str) -> bool:
    """Whether a YYYY, YYYY-MM or YYYY-MM-DD that matched its pattern names a real date."""
    try:
        date.fromisoformat(text + {4: "-01-01", 7: "-01"}.get(len(text), ""))
    except ValueError:
        return False
    return True


def _unique(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
