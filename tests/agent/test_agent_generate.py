"""The generator: valid schema, determinism, time spread, a realistic mix, speed."""

import json
import time
from collections import Counter
from datetime import datetime

from agent.generate import backfill_lines

START, END = datetime(2025, 1, 1), datetime(2025, 1, 2)
FIELDS = {
    "remote_addr": str,
    "remote_user": str,
    "time_local": str,
    "http_method": str,
    "request": str,
    "http_version": str,
    "status": int,
    "body_bytes_sent": int,
    "http_referer": str,
    "http_user_agent": str,
}


def _events(seed: int = 7, count: int = 20000) -> list[dict[str, object]]:
    return [json.loads(line) for line in backfill_lines(seed, count, START, END)]


def test_every_line_is_one_valid_event() -> None:
    lines = list(backfill_lines(7, 5000, START, END))
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    for line in lines:
        event = json.loads(line)
        assert set(event) == set(FIELDS)
        for name, kind in FIELDS.items():
            assert type(event[name]) is kind, (name, event)
        datetime.strptime(str(event["time_local"]), "%Y-%m-%dT%H:%M:%S")


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    assert list(backfill_lines(3, 500, START, END)) == list(backfill_lines(3, 500, START, END))
    assert list(backfill_lines(3, 500, START, END)) != list(backfill_lines(4, 500, START, END))


def test_exact_count_in_time_order_within_window() -> None:
    events = _events(count=12345)
    times = [str(e["time_local"]) for e in events]
    assert len(events) == 12345
    assert times == sorted(times)
    assert times[0] >= START.isoformat() and times[-1] < END.isoformat()


def test_daily_cycle_busier_in_the_afternoon() -> None:
    per_hour = Counter(str(e["time_local"])[11:13] for e in _events())
    assert len(per_hour) == 24
    assert per_hour["14"] > 3 * per_hour["03"]


def test_realistic_mix() -> None:
    events = _events()
    statuses = Counter(int(str(e["status"])) for e in events)
    share_ok = sum(n for s, n in statuses.items() if s < 400) / len(events)
    assert 0.6 < share_ok < 0.95
    for status in (403, 404, 429, 500, 503):
        assert statuses[status] > 0, status
    by_ip = Counter(e["remote_addr"] for e in events).most_common()
    # Heavy hitters: the top IP alone sends far more than a typical one.
    assert by_ip[0][1] > 50 * by_ip[len(by_ip) // 2][1]
    agents = {str(e["http_user_agent"]) for e in events}
    assert any("Googlebot" in a for a in agents) and any("Chrome" in a for a in agents)
    requests = [str(e["request"]) for e in events]
    assert any("?" in r for r in requests)
    assert any(any(part.isdigit() for part in r.split("/")) for r in requests)
    assert len({e["http_referer"] for e in events}) >= 5


def test_backfill_speed_is_well_above_target() -> None:
    # The benchmark measures the real rate; this only guards against a large regression.
    started = time.perf_counter()
    count = sum(1 for _ in backfill_lines(1, 100_000, START, END))
    rate = count / (time.perf_counter() - started)
    assert rate > 25_000, f"{rate:.0f} events/s"
