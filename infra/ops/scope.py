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

# Bacalhau v1.9 nodes carry only Operating-System, Architecture and GPU labels by default (plus
# the configured ones), and constraints cannot select a node ID, so node configs set this label
# to the node's name.
HOST_LABEL = "host"
REGION_LABEL = "region"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


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
    """An archive query: ``key_date`` prefixes the ``dt=`` partitions the job reads, and the
    window trims a --from/--to range that the prefix alone would over-read."""

    key_date: str
    window: Window


def resolve_archive_range(day: str | None, start: str | None, end: str | None) -> ArchiveRange:
    if day is not None:
        if start is not None or end is not None:
            raise UsageError("--date cannot be combined with --from/--to")
        if not (_DAY.match(day) or _MONTH.match(day)) or not _valid(day):
            raise UsageError(f"--date: {day!r} is not a date; expected YYYY-MM-DD (or YYYY-MM)")
        return ArchiveRange(day, Window())
    if start is None or end is None:
        raise UsageError("archive needs --date D, or both --from D and --to D (YYYY-MM-DD)")
    first = _day("--from", start)
    last = _day("--to", end)
    if first > last:
        raise UsageError(f"--from ({start}) must not be after --to ({end})")
    # The S3 source lists one prefix, so the range is read through the dates' common prefix.
    prefix = _common_prefix(start, end)
    window = Window(
        _iso(datetime.combine(first, datetime.min.time())),
        _iso(datetime.combine(last + timedelta(days=1), datetime.min.time())),
    )
    return ArchiveRange(prefix, window)


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
    if not _DAY.match(text) or not _valid(text):
        raise UsageError(f"{flag}: {text!r} is not a date; expected YYYY-MM-DD")
    return date.fromisoformat(text)


def _valid(text: str) -> bool:
    try:
        date.fromisoformat(text if _DAY.match(text) else f"{text}-01")
    except ValueError:
        return False
    return True


def _common_prefix(left: str, right: str) -> str:
    length = 0
    while length < min(len(left), len(right)) and left[length] == right[length]:
        length += 1
    return left[:length]


def _unique(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
