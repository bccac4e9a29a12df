"""Synthetic nginx-style access logs, one JSON object per line (schema in docs/contracts.md).

Written for speed: every pool value is JSON-encoded once up front and a line is one `%`
format, so backfill reaches well over 50,000 events/s on one core. Output depends only on
the seed and the options (live mode adds wall-clock times).
"""

import json
import random
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from agent import pools
from agent.times import EVENT_TIME_FORMAT, floor_hour

LINE = (
    '{"remote_addr": %s, "remote_user": %s, "time_local": "%s", "http_method": "%s", '
    '"request": %s, "http_version": "%s", "status": %d, "body_bytes_sent": %d, '
    '"http_referer": %s, "http_user_agent": %s}\n'
)

# (status, weight) per client kind. Scrapers hit rate limits; probers get 403/404.
HUMAN_STATUS = ((200, 800), (304, 60), (301, 20), (302, 20), (404, 40), (500, 5), (502, 3),
                (503, 3), (403, 4), (429, 2))  # fmt: skip
BOT_STATUS = ((200, 700), (301, 60), (304, 50), (404, 120), (429, 40), (503, 5))
SCRAPER_STATUS = ((200, 550), (429, 400), (404, 30), (503, 20))
PROBER_STATUS = ((403, 600), (404, 350), (200, 50))


@dataclass(frozen=True)
class _Kind:
    """Behaviour shared by a class of clients."""

    statuses: tuple[int, ...]
    status_cum: tuple[int, ...]
    agents: tuple[str, ...]


def _cum(weights: Sequence[int]) -> tuple[int, ...]:
    return tuple(accumulate(weights))


def _kind(statuses: Sequence[tuple[int, int]], agents: Sequence[str]) -> _Kind:
    return _Kind(
        tuple(s for s, _ in statuses),
        _cum([w for _, w in statuses]),
        tuple(json.dumps(a) for a in agents),
    )


class EventFactory:
    """Renders access-log lines from a seeded random stream."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        rng = self._rng
        kinds = {
            "human": _kind(HUMAN_STATUS, pools.BROWSER_AGENTS),
            "bot": _kind(BOT_STATUS, pools.BOT_AGENTS),
            "scraper": _kind(SCRAPER_STATUS, pools.SCRIPT_AGENTS),
            "prober": _kind(PROBER_STATUS, pools.SCRIPT_AGENTS + pools.BROWSER_AGENTS[:1]),
        }
        # (ip json, kind, weight): a long tail of people plus a few heavy hitters.
        clients: list[tuple[str, _Kind, int]] = []
        for _ in range(3000):
            clients.append((self._ip(), kinds["human"], rng.randint(1, 10)))
        for _ in range(8):
            clients.append((self._ip(), kinds["bot"], 400))
        for _ in range(4):
            clients.append((self._ip(), kinds["scraper"], 1500))
        for _ in range(6):
            clients.append((self._ip(), kinds["prober"], 120))
        self._clients = [(ip, kind) for ip, kind, _ in clients]
        self._client_cum = _cum([w for _, _, w in clients])
        self._referrers = tuple(json.dumps(r) for r, _ in pools.REFERRERS)
        self._referrer_cum = _cum([w for _, w in pools.REFERRERS])
        self._missing = tuple(json.dumps(p) for p, _ in pools.MISSING_PATHS)
        self._missing_cum = _cum([w for _, w in pools.MISSING_PATHS])
        self._protected = tuple(json.dumps(p) for p, _ in pools.PROTECTED_PATHS)
        self._protected_cum = _cum([w for _, w in pools.PROTECTED_PATHS])
        self._downloads = tuple(json.dumps(p) for p, _ in pools.DOWNLOAD_FILES)
        self._download_cum = _cum([w for _, w in pools.DOWNLOAD_FILES])
        self._users = ('"-"',) * 49 + ('"alice"',)

    def _ip(self) -> str:
        r = self._rng.randrange
        return f'"{r(1, 224)}.{r(256)}.{r(256)}.{r(1, 255)}"'

    def _ok_request(self) -> tuple[str, str, int]:
        """A (method, request json, body bytes) for a successful request."""
        rng = self._rng
        roll = rng.random()
        if roll < 0.35:
            size = rng.choice(("200x200", "400x400", "800x800"))
            return (
                "GET",
                f'"/image/{rng.randrange(1, 90000)}/productModel/{size}"',
                rng.randrange(3000, 60000),
            )
        if roll < 0.55:
            return "GET", f'"/products/{rng.randrange(1, 20000)}"', rng.randrange(8000, 40000)
        if roll < 0.68:
            term = rng.choice(pools.SEARCH_TERMS)
            request = f'"/api/v1/search?q={term}&page={rng.randrange(1, 6)}"'
            return "GET", request, rng.randrange(1000, 9000)
        if roll < 0.76:
            return (
                "POST",
                f'"/api/v1/cart/{rng.randrange(1, 500000)}/items"',
                rng.randrange(50, 400),
            )
        if roll < 0.84:
            pick = bisect(self._download_cum, rng.random() * self._download_cum[-1])
            return "GET", self._downloads[pick], rng.randrange(200_000, 25_000_000)
        if roll < 0.94:
            return "GET", '"/"', rng.randrange(15000, 20000)
        return "GET", f'"/static/js/app.{rng.randrange(16**6):06x}.js"', rng.randrange(30000, 90000)

    def line(self, time_local: str) -> str:
        """One NDJSON line for an event at `time_local` (already formatted)."""
        rng = self._rng
        random_ = rng.random
        ip, kind = self._clients[bisect(self._client_cum, random_() * self._client_cum[-1])]
        status = kind.statuses[bisect(kind.status_cum, random_() * kind.status_cum[-1])]
        if status == 404:
            method = "GET"
            request = self._missing[bisect(self._missing_cum, random_() * self._missing_cum[-1])]
            size = rng.randrange(150, 600)
        elif status == 403:
            method = "GET" if random_() < 0.8 else "POST"
            pick = bisect(self._protected_cum, random_() * self._protected_cum[-1])
            request = self._protected[pick]
            size = rng.randrange(150, 300)
        else:
            method, request, size = self._ok_request()
            if status in (304, 301, 302):
                size = 0
            elif status >= 429:
                size = rng.randrange(100, 500)
        referer = self._referrers[bisect(self._referrer_cum, random_() * self._referrer_cum[-1])]
        return LINE % (
            ip,
            self._users[int(random_() * 50)],
            time_local,
            method,
            request,
            "HTTP/2.0" if random_() < 0.3 else "HTTP/1.1",
            status,
            size,
            referer,
            kind.agents[int(random_() * len(kind.agents))],
        )


def _hour_counts(count: int, start: datetime, end: datetime) -> list[tuple[datetime, int, int]]:
    """Split [start, end) at hour boundaries: (segment start, seconds, events) per segment.

    Events are shared out by segment length times the hour-of-day weight, with the largest
    remainder method so the total is exactly `count` and the result is deterministic.
    """
    segments: list[tuple[datetime, int]] = []
    cursor = start
    while cursor < end:
        boundary = min(floor_hour(cursor) + timedelta(hours=1), end)
        segments.append((cursor, int((boundary - cursor).total_seconds())))
        cursor = boundary
    weights = [seconds * pools.HOURLY_WEIGHTS[seg.hour] for seg, seconds in segments]
    total = sum(weights)
    shares = [count * w / total for w in weights]
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    return [(seg, seconds, n) for (seg, seconds), n in zip(segments, counts, strict=True)]


def backfill_lines(seed: int, count: int, start: datetime, end: datetime) -> Iterator[str]:
    """`count` lines with times in [start, end), in time order, following a daily cycle."""
    if end <= start:
        raise ValueError("--end must be after --start")
    factory = EventFactory(seed)
    line = factory.line
    last_second = -1
    stamp = ""
    for seg_start, seconds, events in _hour_counts(count, start, end):
        for i in range(events):
            # Evenly spaced within the segment; consecutive events share a formatted second.
            second = i * seconds // events
            if second != last_second:
                last_second = second
                stamp = (seg_start + timedelta(seconds=second)).strftime(EVENT_TIME_FORMAT)
            yield line(stamp)
        last_second = -1


def write_lines(lines: Iterator[str], write: Callable[[str], object], batch: int = 4096) -> int:
    """Write lines in batches (fewer write calls); returns how many were written."""
    written = 0
    buffer: list[str] = []
    for item in lines:
        buffer.append(item)
        if len(buffer) >= batch:
            write("".join(buffer))
            written += len(buffer)
            buffer.clear()
    if buffer:
        write("".join(buffer))
        written += len(buffer)
    return written
