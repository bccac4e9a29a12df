"""Scope, window and archive dates: pure validation, before any API call."""

from __future__ import annotations

from datetime import datetime

import pytest

from infra.ops.scope import (
    MAX_RANGE_DAYS,
    Scope,
    UsageError,
    Window,
    check_sql,
    check_stack,
    resolve_archive_range,
    resolve_scope,
    resolve_window,
)

REGIONS = ["eu-1", "us-1"]
NODES = {"eu-1": ["eu-a", "eu-b"], "us-1": ["us-a"]}


def test_no_flags_scope_every_region_and_no_host():
    scope = resolve_scope(REGIONS, [], [], NODES)
    assert scope.constraints() == [{"Key": "region", "Operator": "in", "Values": REGIONS}]


def test_regions_become_one_in_constraint_without_duplicates():
    scope = resolve_scope(REGIONS, ["us-1", "eu-1", "us-1"], [], NODES)
    assert scope.constraints() == [{"Key": "region", "Operator": "in", "Values": ["us-1", "eu-1"]}]


def test_hosts_add_a_host_label_constraint_and_narrow_regions_to_theirs():
    scope = resolve_scope(REGIONS, [], ["eu-b"], NODES)
    assert scope == Scope(("eu-1",), ("eu-b",))
    assert scope.constraints() == [
        {"Key": "region", "Operator": "in", "Values": ["eu-1"]},
        {"Key": "host", "Operator": "in", "Values": ["eu-b"]},
    ]


def test_regions_and_hosts_together():
    scope = resolve_scope(REGIONS, ["eu-1", "us-1"], ["eu-a", "us-a"], NODES)
    assert scope.constraints()[1] == {"Key": "host", "Operator": "in", "Values": ["eu-a", "us-a"]}
    assert scope.regions == ("eu-1", "us-1")


@pytest.mark.parametrize(
    ("regions", "hosts", "nodes", "message"),
    [
        (["mars-1"], [], NODES, "--region: unknown region(s) mars-1; expected one of eu-1, us-1"),
        ([], ["eu-z"], NODES, "--host: unknown host(s) eu-z"),
        (["us-1"], ["eu-a"], NODES, "--host: eu-a not in the chosen --region us-1"),
        ([], ["eu-a"], None, "stack output 'nodes' is missing"),
    ],
)
def test_bad_scope_names_the_flag(regions, hosts, nodes, message):
    with pytest.raises(UsageError) as raised:
        resolve_scope(REGIONS, regions, hosts, nodes)
    assert message in str(raised.value)


def test_relative_window_is_resolved_once_to_iso():
    now = datetime(2025, 1, 15, 12, 0, 0)
    window = resolve_window("90m", "2025-01-15T11:45:00Z", now)
    assert (window.since, window.until) == ("2025-01-15T10:30:00", "2025-01-15T11:45:00")
    assert resolve_window(None, None, now).since is None


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("yesterday", None, "--since: not a time: 'yesterday'"),
        (None, "2025-13-01", "--until: not a time"),
        ("2025-01-02", "2025-01-01", "--until (2025-01-01) must be after --since (2025-01-02)"),
    ],
)
def test_bad_window(since, until, message):
    with pytest.raises(UsageError) as raised:
        resolve_window(since, until)
    assert message in str(raised.value)


def test_archive_year_month_day_and_range():
    for day in ("2025", "2025-01", "2025-01-15"):
        span = resolve_archive_range(day, None, None)
        assert (span.prefix, span.days, span.window) == (day, (), Window())
    span = resolve_archive_range(None, "2025-01-10", "2025-01-12")
    assert span.prefix is None
    assert span.days == ("2025-01-10", "2025-01-11", "2025-01-12")
    assert (span.window.since, span.window.until) == ("2025-01-10T00:00:00", "2025-01-13T00:00:00")


def test_a_range_across_a_year_never_widens_to_a_decade():
    span = resolve_archive_range(None, "2024-12-31", "2025-01-01")
    assert (span.prefix, span.days) == (None, ("2024-12-31", "2025-01-01"))
    leap = resolve_archive_range(None, "2024-01-01", "2024-12-31")
    assert len(leap.days) == MAX_RANGE_DAYS == 366


@pytest.mark.parametrize(
    ("day", "start", "end", "message"),
    [
        ("15/01/2025", None, None, "--date: '15/01/2025' is not a date; expected YYYY-MM-DD"),
        ("2025-02-30", None, None, "--date: '2025-02-30' is not a date"),
        ("2025-01-15\n", None, None, "is not a date"),
        ("0000", None, None, "--date: '0000' is not a date"),
        (None, "2025-01-10", None, "archive needs --date D, or both --from D and --to D"),
        (None, "2025-1-10", "2025-01-12", "--from: '2025-1-10' is not a date"),
        (None, "2025-01-12", "2025-01-10", "--from (2025-01-12) must not be after --to"),
        ("2025-01-12", "2025-01-10", None, "--date cannot be combined with --from/--to"),
        (None, "2024-01-01", "2025-01-01", "367 days is more than 366"),
    ],
)
def test_bad_archive_dates(day, start, end, message):
    with pytest.raises(UsageError) as raised:
        resolve_archive_range(day, start, end)
    assert message in str(raised.value)


@pytest.mark.parametrize("stack", ["dev", "prod-eu", "team_a.v2", "x" * 100])
def test_stack_names_pulumi_accepts(stack):
    assert check_stack(stack) == stack


@pytest.mark.parametrize("stack", ["", "dev prod", "org/proj/dev", "-dev", "dev\n", "x" * 101])
def test_stack_names_that_cannot_go_into_a_job_name(stack):
    with pytest.raises(UsageError, match=r"--stack: .* is not a stack name"):
        check_stack(stack)


def test_an_empty_sql_is_refused_and_a_far_past_is_one_line():
    with pytest.raises(UsageError, match="--sql: empty"):
        check_sql(" \n ")
    with pytest.raises(UsageError, match=r"--since: .*too far back"):
        resolve_window("999999999d", None)


def test_one_region_of_a_scope_keeps_only_its_hosts():
    scope = resolve_scope(REGIONS, [], ["eu-a", "us-a"], NODES)
    region_of = {host: region for region, hosts in NODES.items() for host in hosts}
    assert scope.only("eu-1", region_of) == Scope(("eu-1",), ("eu-a",))
    assert scope.only("us-1", region_of).constraints()[1]["Values"] == ["us-a"]
