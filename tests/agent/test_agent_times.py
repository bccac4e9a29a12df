"""Time parsing: ISO instants, relative offsets, durations."""

from datetime import datetime, timedelta

import pytest

from agent.times import floor_hour, parse_duration, parse_instant

NOW = datetime(2025, 3, 1, 12, 30, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90", 90), ("45s", 45), ("15m", 900), ("1h", 3600), ("2d", 172800)],
)
def test_durations(text: str, expected: int) -> None:
    assert parse_duration(text) == timedelta(seconds=expected)


def test_relative_instants_count_back_from_now() -> None:
    assert parse_instant("15m", NOW) == NOW - timedelta(minutes=15)
    assert parse_instant("2d", NOW) == NOW - timedelta(days=2)


def test_iso_instants_are_utc() -> None:
    assert parse_instant("2025-01-31T12:00:00") == datetime(2025, 1, 31, 12)
    assert parse_instant("2025-01-31T12:00:00+02:00") == datetime(2025, 1, 31, 10)
    assert parse_instant("2025-01-31T12:00:00Z") == datetime(2025, 1, 31, 12)


@pytest.mark.parametrize("text", ["yesterday", "1w", "", "12:00"])
def test_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_instant(text, NOW)


def test_floor_hour() -> None:
    assert floor_hour(NOW) == datetime(2025, 3, 1, 12)
