"""Time parsing shared by the subcommands: ISO instants, relative offsets and durations.

All times are naive UTC `datetime`s, matching `time_local` in the event schema.
"""

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def utc_now() -> datetime:
    """The current time as a naive UTC datetime, whole seconds."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def parse_duration(text: str) -> timedelta:
    """Parse `90`, `90s`, `15m`, `1h` or `2d` into a timedelta (a bare number is seconds)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30s, 15m, 1h, 2d)")
    try:
        return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    except OverflowError:
        raise ValueError(f"duration too long: {text!r}") from None


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """Parse an ISO 8601 time or a relative one (`15m` = fifteen minutes before `now`).

    An ISO time with an offset is converted to UTC; one without is taken as UTC.
    """
    text = text.strip()
    if _DURATION.match(text) and not text.isdigit():
        try:
            return (now or utc_now()) - parse_duration(text)
        except OverflowError:
            raise ValueError(f"too far back: {text!r} (before year 1)") from None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (expected ISO 8601 like 2025-01-31T12:00:00 or 15m, 1h, 2d)"
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour containing `moment`."""
    return moment.replace(minute=0, second=0, microsecond=0)
