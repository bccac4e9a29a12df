"""The trusted reader's SQL (agent/events.py) run by real DuckDB, rule by rule."""

import json
import random
from datetime import datetime
from pathlib import Path

import duckdb

from agent.events import OK, RawFile, part_sql
from agent.times import EVENT_TIME_FORMAT
from tests.agent.conftest import event_line, write_raw

CANONICAL = "2025-01-01T10:30:00"
EDGES = [
    CANONICAL,
    "2025-1-1T1:2:3",
    "2025-01-01t10:30:00",
    "2025-01-01T10:30:00.5",
    "2025-01-01T10:30:00+01:00",
    "2025-01-01T10:30:00Z",
    " 2025-01-01T10:30:00",
    "2025-01-01T10:30:00 ",
    "2025-01-01 10:30:00",
    "2025-02-30T10:30:00",
    "2024-02-29T10:30:00",
    "2025-01-01T24:00:00",
    "2025-01-01T23:59:60",
    "0000-01-01T00:00:00",
    "99999-01-01T00:00:00",
    "",
    "2025-01-01",
    "2025-01-01T10:30",
    "-2025-01-01T10:30:00",
    "2025-01-01T10:30:00\n",
    "\uff12\uff10\uff12\uff15-01-01T10:30:00",
]


def _mutations(count: int, seed: int = 13) -> list[str]:
    """`count` near misses of the canonical form: characters replaced, inserted, removed."""
    rng = random.Random(seed)
    alphabet = "0123456789-T:. +Zt"
    found = []
    for _ in range(count):
        text = list(CANONICAL)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text))
            action = rng.random()
            if action < 0.4:
                text[at] = rng.choice(alphabet)
            elif action < 0.7:
                text.insert(at, rng.choice(alphabet))
            else:
                del text[at]
        found.append("".join(text))
    return found


def test_time_is_parsed_exactly_as_strptime_would(tmp_path: Path) -> None:
    """The reader types `time_local` as it reads it (agent/events.py `_read_ndjson`), with
    DuckDB's `timestampformat`; the contract's rule is DuckDB's own `try_strptime` with the
    same format, which the reader used before. The two accept the same texts, to the second."""
    texts = EDGES + _mutations(2000)
    path = tmp_path / "application.log"
    write_raw(path, [event_line(time_local=text) for text in texts])
    con = duckdb.connect()
    sql = part_sql([RawFile(str(path), False)], [], ["time_local"], False)
    rows = con.sql(f"SELECT time_local, {OK} FROM ({sql})").fetchall()
    expected = con.execute(
        "SELECT try_strptime(t, $format) FROM unnest($texts) AS u(t)",
        {"format": EVENT_TIME_FORMAT, "texts": texts},
    ).fetchall()
    assert len(rows) == len(texts)
    # Files are read in order: row i is line i.
    assert [(time if ok else None) for time, ok in rows] == [e for (e,) in expected]
    valid = sum(1 for _, ok in rows if ok)
    assert 100 < valid < len(texts)  # the mutations exercise both sides
    assert rows[0] == (datetime(2025, 1, 1, 10, 30), True)
    # DuckDB's strptime takes unpadded numbers and whitespace around; not these:
    assert not any(rows[i][1] for i in (4, 5, 8))  # an offset, Z, a space for the T
    assert rows[1] == (datetime(2025, 1, 1, 1, 2, 3), True)


def test_window_keeps_malformed_lines_wherever_their_time_falls(tmp_path: Path) -> None:
    """Valid events outside the window go; every malformed line stays, to be counted, even
    one whose time is valid and outside the window (the filter tests the window first,
    agent/events.py `window_filter`)."""
    path = tmp_path / "application.log"
    lines = [
        event_line(time_local="2025-01-01T09:59:59"),  # before: dropped
        event_line(time_local="2025-01-01T10:00:00"),  # first second in
        event_line(time_local="2025-01-01T10:59:59"),
        event_line(time_local="2025-01-01T11:00:00"),  # the end is excluded
        event_line(time_local="2025-01-01T08:00:00", status="404"),  # malformed, outside
        event_line(time_local="2025-01-01T10:30:00", status=4e2),  # malformed, inside
        event_line(time_local="yesterday"),  # malformed, no time
        b"not json\n",
    ]
    write_raw(path, lines)
    sql = part_sql(
        [RawFile(str(path), False)], [], ["time_local"], False,
        datetime(2025, 1, 1, 10), datetime(2025, 1, 1, 11),
    )  # fmt: skip
    rows = duckdb.connect().sql(f"SELECT time_local, {OK} FROM ({sql})").fetchall()
    kept = sorted((str(time), ok) for time, ok in rows)
    assert kept == sorted(
        [
            ("2025-01-01 10:00:00", True),
            ("2025-01-01 10:59:59", True),
            ("2025-01-01 08:00:00", False),
            ("2025-01-01 10:30:00", False),
            ("None", False),
            ("None", False),
        ]
    )


def test_field_text_limit_counts_the_time_as_its_canonical_length(tmp_path: Path) -> None:
    """MAX_EVENT_BYTES bounds the text of the fields; the time, read as a TIMESTAMP, counts
    as the 19 characters of its canonical form."""
    from agent.events import MAX_EVENT_BYTES, STRING_FIELDS

    others = sum(len(str(json.loads(event_line())[f])) for f in STRING_FIELDS if f != "request")
    room = MAX_EVENT_BYTES - len(CANONICAL) - others
    path = tmp_path / "application.log"
    write_raw(path, [event_line(request="/" * room), event_line(request="/" * (room + 1))])
    sql = part_sql([RawFile(str(path), False)], [], ["request"], False)
    rows = duckdb.connect().sql(f"SELECT {OK} FROM ({sql})").fetchall()
    assert rows == [(True,), (False,)]
