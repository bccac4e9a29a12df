"""Named queries answered in the reader's own database (agent/query.py `_run_trusted`) give
exactly what the sandbox gives for the same SQL: every named query, its answer and its partial
groups, the counts on stderr, over hostile input (malformed lines, a damaged gzip, identical
lines), a time window, a compacted-only archive, and raw archives to de-duplicate (re-deliveries,
identical requests, lines without identities, raw objects replaying a compacted hour)."""

import gzip
import io
import json
import zlib
from datetime import datetime
from pathlib import Path

import pytest

from agent.discover import Window
from agent.named import NAMED_QUERIES, NAMED_SQL, Named, named_parameters
from agent.query import Limits, QueryError, Result, Trusted, run_query
from tests.agent.conftest import (
    event_line,
    record_sandboxes,
    write_compacted,
    write_events,
    write_raw,
)

KEYED = [name for name, query in NAMED_QUERIES.items() if query.keys]


def forbidden(*args: object) -> Result:
    raise AssertionError("this path must not run")


def both(
    logs: Path, name: Named, window: Window, partial: bool, limits: Limits | None = None
) -> tuple[tuple[Result, str], tuple[Result, str]]:
    """(sandbox answer, its stderr), (trusted answer, its stderr), each path made sure of."""
    query = NAMED_QUERIES[name]
    sql = query.partial_sql if partial else NAMED_SQL[name]
    parameters = {} if partial else named_parameters(sql, 5, 3)
    answers = []
    for trusted, other in ((None, "_run_trusted"), (Trusted(query, partial), "_run")):
        diagnostics = io.StringIO()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(f"agent.query.{other}", forbidden)
            result = run_query(logs, sql, parameters, window, diagnostics, limits, trusted=trusted)
        answers.append((result, diagnostics.getvalue()))
    return answers[0], answers[1]


def paths_agree(logs: Path, name: Named, partial: bool, window: Window) -> str:
    """Both paths give the same columns, rows and notes over `window` and over all time; the
    notes of the last."""
    notes = ""
    for each in (window, Window()):
        (sandboxed, sandbox_notes), (trusted, notes) = both(logs, name, each, partial)
        assert trusted.columns == sandboxed.columns
        assert rows_of(trusted, partial) == rows_of(sandboxed, partial)
        assert notes == sandbox_notes
    return notes


def rows_of(result: Result, partial: bool) -> list[tuple[object, ...]]:
    # Partial groups come in no particular order; an answer's order is part of it.
    return sorted(result.rows, key=repr) if partial else result.rows


@pytest.fixture
def hostile_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    write_events(folder / "application.log.2.gz", 1, 900, "2025-01-01T00:00", "2025-01-01T06:00")
    events = write_events(
        folder / "application.log.1", 2, 600, "2025-01-01T06:00", "2025-01-01T09:00"
    )
    # Identical requests, and lines the contract refuses, in the live file.
    lines = [event_line(status=404, request="/same")] * 5
    lines += [b"not json\n", event_line(status="404"), b'{"status": 404}\n']
    write_raw(folder / "application.log", lines)
    with (folder / "application.log.1").open("ab") as log:
        log.write(b"\xff\xfe broken utf-8\n")
    whole = gzip.compress(
        b"".join(event_line(status=429, remote_addr=f"10.9.0.{i % 3}") for i in range(40))
    )
    (folder / "application.log.3.gz").write_bytes(whole[: len(whole) // 2])
    assert events
    return folder


@pytest.mark.parametrize("partial", [False, True])
@pytest.mark.parametrize("name", KEYED)
def test_every_named_query_matches_the_sandbox_on_hostile_input(
    hostile_folder: Path, name: Named, partial: bool
) -> None:
    window = Window(datetime(2025, 1, 1, 3), datetime(2025, 1, 1, 7))
    trusted_notes = paths_agree(hostile_folder, name, partial, window)
    assert "malformed lines skipped" in trusted_notes
    assert " 0 malformed" not in trusted_notes
    assert "application.log.3.gz: truncated gzip" in trusted_notes


@pytest.mark.parametrize("name", KEYED)
def test_a_compacted_only_archive_matches_the_sandbox(tmp_path: Path, name: Named) -> None:
    root = tmp_path / "archive"
    for hour, seed in (("10", 1), ("11", 2)):
        folder = root / "region=eu-1" / "dt=2025-01-01" / f"hour={hour}"
        events = write_events(
            folder / "raw.gz", seed, 300, f"2025-01-01T{hour}:00", f"2025-01-01T{hour}:59"
        )
        # Events without identity columns: written with null ids, as before identities.
        write_compacted(folder / "compacted.parquet", events, ["raw.gz"])
    (sandboxed, sandbox_notes), (trusted, trusted_notes) = both(root, name, Window(), False)
    assert trusted.rows == sandboxed.rows
    assert trusted_notes == sandbox_notes
    assert "600 events" in trusted_notes
    window = Window(datetime(2025, 1, 1, 10, 30), datetime(2025, 1, 1, 11, 30))
    (sandboxed, sandbox_notes), (trusted, trusted_notes) = both(root, name, window, True)
    assert rows_of(trusted, True) == rows_of(sandboxed, True)
    assert trusted_notes == sandbox_notes
    assert "600 events" not in trusted_notes


def test_bounds_hold_on_the_trusted_path(hostile_folder: Path) -> None:
    name = Named.SECURITY_ANALYSIS
    with pytest.raises(QueryError, match="--max-rows"):
        both(hostile_folder, name, Window(), True, Limits(max_rows=2))


@pytest.fixture
def hostile_archive(tmp_path: Path) -> Path:
    """Raw hours to de-duplicate: re-delivered events across objects and within one, identical
    requests under different ids, lines archived before identities (an exact copy is the same
    event), malformed lines; an hour with a compacted file whose events a raw object replays;
    a truncated object."""
    root = tmp_path / "archive"
    hour = root / "region=eu-1" / "dt=2025-01-01"
    first = [
        event_line(
            status=(404, 403, 429, 200)[i % 4], remote_addr=f"10.1.0.{i % 5}",
            request=f"/p/{i % 7}.png", http_referer=("-", "https://a.example/")[i % 2],
            time_local=f"2025-01-01T10:{i % 60:02d}:00", event_id=f"node-a:1-ab:{i * 100}",
        )
        for i in range(120)
    ]  # fmt: skip
    same = event_line(status=404, request="/same", time_local="2025-01-01T10:30:00")
    old = event_line(status=429, remote_addr="10.9.9.9", time_local="2025-01-01T10:45:00")
    write_raw(hour / "hour=10" / "a.gz", [*first, same, old, old, b"not json\n"])
    replayed = [*first[80:], *first[100:110]]  # and again within the object
    other_ids = [
        event_line(status=404, request="/same", event_id=f"node-b:2-cd:{i}") for i in range(4)
    ]
    write_raw(hour / "hour=10" / "b.gz", [*replayed, *other_ids, same, event_line(status="404")])
    events = write_events(
        hour / "hour=11" / "raw.gz", 3, 200, "2025-01-01T11:00", "2025-01-01T11:59"
    )
    rows = [
        {**e, "event_id_source": "node-c:3-ef", "event_id_offset": n} for n, e in enumerate(events)
    ]
    write_compacted(hour / "hour=11" / "compacted.parquet", rows, ["raw.gz"])
    replay = [
        (json.dumps({**e, "event_id": f"node-c:3-ef:{n}"}) + "\n").encode()
        for n, e in enumerate(events) if n % 3 == 0
    ]  # fmt: skip
    write_raw(hour / "hour=11" / "late.gz", replay)
    cut = hour / "hour=12" / "cut.gz"
    write_events(cut, 4, 300, "2025-01-01T12:00", "2025-01-01T12:59")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    return root


@pytest.mark.parametrize("partial", [False, True])
@pytest.mark.parametrize("name", KEYED)
def test_de_duplicated_archives_match_the_sandbox(
    hostile_archive: Path, name: Named, partial: bool
) -> None:
    """De-duplicating in the reader's SQL (agent/events.py `identities_sql`) counts what the
    sandbox's path (agent/dedup.py, between the two databases) counts."""
    window = Window(datetime(2025, 1, 1, 10, 20), datetime(2025, 1, 1, 11, 30))
    notes = paths_agree(hostile_archive, name, partial, window)
    # The lines the truncated object still holds, whole.
    cut = (hostile_archive / "region=eu-1/dt=2025-01-01/hour=12/cut.gz").read_bytes()
    salvaged = zlib.decompressobj(wbits=31).decompress(cut).count(b"\n")
    assert salvaged > 50
    # 120 events, `/same` and the line without an id once each, 4 other ids, 200 compacted.
    # Removed: the old line's copy, `/same` again, 40 + 10 replayed in b.gz, 67 in late.gz.
    events = 120 + 1 + 1 + 4 + 200 + salvaged
    assert f"{events} events, 2 malformed lines skipped, 119 duplicate events removed" in notes
    assert "cut.gz: truncated gzip" in notes


def test_a_re_delivered_event_counts_once(tmp_path: Path) -> None:
    hour = tmp_path / "archive" / "region=eu-1" / "dt=2025-01-01" / "hour=10"
    line = event_line(status=404, request="/gone", event_id="node-a:1-ab:0")
    write_raw(
        hour / "a.gz", [line, event_line(status=404, request="/gone", event_id="node-a:1-ab:9")]
    )
    write_raw(hour / "b.gz", [line])  # re-delivered
    query = NAMED_QUERIES[Named.ERROR_ANALYSIS]
    diagnostics = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("agent.query._run", forbidden)
        result = run_query(
            tmp_path / "archive", NAMED_SQL[Named.ERROR_ANALYSIS], {"limit": 5}, Window(),
            diagnostics, trusted=Trusted(query),
        )  # fmt: skip
    assert result.rows == [("/gone", 2)]
    assert "1 duplicate events removed" in diagnostics.getvalue()


def test_a_large_archive_is_de_duplicated_on_the_sandbox_path(
    hostile_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond SQL_DEDUP_BYTES of raw objects, the sandbox's identity set is the cheaper way
    (agent/query.py); the answer is the same either way."""
    name = Named.SECURITY_ANALYSIS
    query = NAMED_QUERIES[name]
    sql, parameters = NAMED_SQL[name], named_parameters(NAMED_SQL[name], 5, 3)
    answers = []
    for limit, other in ((1 << 40, "_run"), (0, "_run_trusted")):
        monkeypatch.setattr("agent.query.SQL_DEDUP_BYTES", limit)
        diagnostics = io.StringIO()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(f"agent.query.{other}", forbidden)
            result = run_query(
                hostile_archive, sql, parameters, Window(), diagnostics, trusted=Trusted(query)
            )
        answers.append((result.rows, diagnostics.getvalue()))
    assert answers[0] == answers[1]
    assert "119 duplicate events removed" in answers[0][1]


def test_the_size_to_de_duplicate_is_read_from_gzip_trailers_within_bounds(
    tmp_path: Path,
) -> None:
    """The choice of path rests on agent/query.py `_raw_size`: a gzip trailer's size, but
    never below the file's own size nor above DEFLATE's 1032:1 limit (a truncated file's last
    four bytes are no trailer)."""
    from agent.query import _raw_size

    data = b"".join(event_line(request=f"/r/{i}") for i in range(2000))
    whole = tmp_path / "whole.gz"
    whole.write_bytes(gzip.compress(data))
    assert _raw_size(whole) == len(data)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(whole.read_bytes()[:-9] + b"\xff\xff\xff\x7f")  # a trailer of 2 GiB
    assert _raw_size(cut) == 1032 * cut.stat().st_size
    assert _raw_size(tmp_path / "missing.gz") == 0


def test_the_reader_gets_the_whole_memory_only_when_it_answers_alone(
    hostile_folder: Path, hostile_archive: Path
) -> None:
    """Answering alone, the reader has the query's `--memory-limit`; beside the sandbox, which
    keeps all of it for user SQL, a quarter to stream a node's folder (agent/query.py
    STREAMING_SHARE), a half to de-duplicate an archive on the way (DEDUP_SHARE), and never
    less than SANDBOX_READER_FLOOR (384 MiB: a quarter of 1 GiB is below it)."""
    import agent.query

    seen: dict[str, str] = {}

    def spy(name: str) -> object:
        real = getattr(agent.query, name)

        def run(reader: object, *args: object) -> Result:
            cursor = reader.con.cursor()  # type: ignore[attr-defined]
            (setting,) = cursor.execute("SELECT current_setting('memory_limit')").fetchall()[0]
            seen[name] = setting
            return real(reader, *args)  # type: ignore[no-any-return]

        return run

    query = NAMED_QUERIES[Named.TOP_REFERRING_SITES]
    sql = NAMED_SQL[Named.TOP_REFERRING_SITES]
    limits = Limits(memory_bytes=1 << 30)
    archive = hostile_archive
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("agent.query._run_trusted", spy("_run_trusted"))
        patch.setattr("agent.query._run", spy("_run"))
        for trusted in (Trusted(query), None):
            run_query(
                hostile_folder, sql, named_parameters(sql, 5, 3), Window(), io.StringIO(),
                limits, trusted=trusted,
            )  # fmt: skip
    assert seen == {"_run_trusted": "1.0 GiB", "_run": "384.0 MiB"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("agent.query.SQL_DEDUP_BYTES", 0)  # the archive on the sandbox's way
        patch.setattr("agent.query._run", spy("_run"))
        run_query(
            archive, sql, named_parameters(sql, 5, 3), Window(), io.StringIO(), limits,
            trusted=Trusted(query),
        )  # fmt: skip
    assert seen["_run"] == "512.0 MiB"


def test_a_named_query_on_the_sandboxs_way_gives_it_one_thread_and_user_sql_its_threads(
    hostile_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """agent/query.py NAMED_SANDBOX_THREADS: our aggregate over one stream runs on one sandbox
    thread; user SQL keeps `--threads` (Limits.threads), and both answer alike."""
    made = record_sandboxes(monkeypatch)
    monkeypatch.setattr("agent.query.SQL_DEDUP_BYTES", 0)  # the archive on the sandbox's way
    query = NAMED_QUERIES[Named.TOP_REFERRING_SITES]
    sql = NAMED_SQL[Named.TOP_REFERRING_SITES]
    parameters = named_parameters(sql, 5, 3)
    limits = Limits(threads=2)
    answers, used = [], []
    for trusted in (Trusted(query), None):
        answers.append(
            run_query(
                hostile_archive, sql, parameters, Window(), io.StringIO(), limits, trusted=trusted
            )
        )
        # A sandbox per attempt: the archive's truncated object is repaired, then read again.
        used.append({limits.threads for limits, _ in made})
        made.clear()
    assert used == [{1}, {2}]
    assert answers[0] == answers[1] and answers[0].rows
