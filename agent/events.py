"""The SQL that turns log files into validated event rows, for the trusted reader only.

Every non-blank line becomes exactly one row: DuckDB's NDJSON reader with `ignore_errors`
yields a NULL-filled row for a line that is not JSON (invalid UTF-8 included), and `_ok` says
whether the row is an event the contract allows (docs/contracts.md, "Access-log event"):
- every field present and not null;
- `status` and `body_bytes_sent` JSON integers: they are read as raw JSON text, which must be
  an integer in range and nothing else, so `"404"`, `true` and `12.9` are malformed, not cast;
- `time_local` in the form `YYYY-MM-DDTHH:MM:SS`, as DuckDB's `strptime` reads it (which
  also takes unpadded numbers and whitespace around them). The NDJSON reader parses it as a
  TIMESTAMP with that format as it reads the line, so the text is never copied;
  tests/agent/test_agent_events.py holds it to what `try_strptime` accepts;
- at most MAX_EVENT_BYTES of field text (an access-log line is a few hundred bytes), the time
  counted as its canonical TIME_TEXT_BYTES.
A line DuckDB's read buffer (twice MAX_LINE_BYTES) cannot hold whole fails the read instead:
always over 32 MiB, from MAX_LINE_BYTES on where the line falls decides. The reader then
rewrites that file without its lines over MAX_LINE_BYTES (agent/sanitize.py), which always
fit, and counts them as malformed; a long line DuckDB does hold is judged by its fields
(tests/agent/test_agent_hostile.py).

Archive rows also carry `event_id` and two independent 64-bit hashes of their identity
(`event_id` when present, else the whole event for archives written before identities), which
the reader deduplicates on (agent/dedup.py).
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.archive import EVENT_FIELDS, ID_OFFSET, ID_SOURCE, IdColumns
from agent.times import EVENT_TIME_FORMAT

FIELDS = EVENT_FIELDS
INTEGER_FIELDS = {"status": "INTEGER", "body_bytes_sent": "BIGINT"}
STRING_FIELDS = tuple(f for f in FIELDS if f not in INTEGER_FIELDS and f != "time_local")
DUCK_TYPES = {name: INTEGER_FIELDS.get(name, "VARCHAR") for name in FIELDS} | {
    "time_local": "TIMESTAMP"
}
EVENT_ID = "event_id"
TIME_TEXT_BYTES = len("2025-01-01T00:00:00")
MAX_EVENT_BYTES = 1 << 20
MAX_LINE_BYTES = 16 << 20
# The reader's own columns next to the event's.
OK, HASH_1, HASH_2 = "_ok", "_h1", "_h2"


@dataclass(frozen=True)
class RawFile:
    """A gzip or plain NDJSON file, as DuckDB should open it (`sql_path`)."""

    sql_path: str
    gzip: bool


@dataclass(frozen=True)
class ParquetFile:
    """A compacted file and how it stores `event_id` (agent/archive.py)."""

    sql_path: str
    ids: IdColumns


def literal_path(path: str) -> str:
    """`path` as DuckDB opens it literally: glob characters become one-character classes.

    DuckDB expands `*`, `?` and `[...]` in every file name it is given, so a file called
    `*.gz` would otherwise read every gzip file in its folder.
    """
    return re.sub(r"[\[*?]", lambda match: f"[{match.group(0)}]", path)


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _path_list(paths: Iterable[str]) -> str:
    return "[" + ", ".join(quote(p) for p in paths) + "]"


def _read_ndjson(files: Sequence[RawFile], gzip: bool, with_event_id: bool) -> str:
    columns = {f: "JSON" if f in INTEGER_FIELDS else "VARCHAR" for f in FIELDS}
    columns["time_local"] = "TIMESTAMP"
    if with_event_id:
        columns[EVENT_ID] = "VARCHAR"
    spec = "{" + ", ".join(f"{quote(k)}: {quote(v)}" for k, v in columns.items()) + "}"
    return (
        f"read_ndjson({_path_list(f.sql_path for f in files)}, columns = {spec}, "
        "ignore_errors = true, format = 'newline_delimited', hive_partitioning = false, "
        f"timestampformat = {quote(EVENT_TIME_FORMAT)}, "
        f"compression = '{'gzip' if gzip else 'none'}', maximum_object_size = {MAX_LINE_BYTES})"
    )


def _checks() -> str:
    """True for an event the contract allows. A missing or null field is NULL, which makes
    its term NULL and the whole check false: the size sum covers the text fields' presence,
    the integer casts that of the integers."""
    # DuckDB writes a JSON number back as yyjson prints it: an integer as bare digits, any
    # other number with a `.` or an exponent (`400.0`, `1e300`); a string keeps its quotes.
    integers = [
        f"TRY_CAST({f}::VARCHAR AS {t}) IS NOT NULL AND NOT contains({f}::VARCHAR, '.') "
        f"AND NOT contains({f}::VARCHAR, 'e')"
        for f, t in INTEGER_FIELDS.items()
    ]
    size = " + ".join(f"strlen({f})" for f in STRING_FIELDS)
    terms = [f"{size} <= {MAX_EVENT_BYTES - TIME_TEXT_BYTES}", *integers, "time_local IS NOT NULL"]
    return "coalesce(" + " AND ".join(terms) + ", false)"


def _converted() -> str:
    def convert(field: str) -> str:
        if field in INTEGER_FIELDS:
            return f"TRY_CAST({field}::VARCHAR AS {INTEGER_FIELDS[field]}) AS {field}"
        return field

    return ", ".join(convert(f) for f in FIELDS)


def _identity_hashes(event_id: str) -> str:
    """Two independent 64-bit hashes of an event's identity (a 128-bit key in all).

    With `event_id` the identity is the id (identical lines with different ids stay apart);
    without it, the whole event (an exact duplicate line is the same event).
    """
    event = ", ".join(FIELDS)
    salted = ", ".join(f"'#' || {f}::VARCHAR" for f in FIELDS)
    return (
        f"CASE WHEN {event_id} IS NULL THEN hash({event}) ELSE hash({event_id}) END AS {HASH_1}, "
        f"CASE WHEN {event_id} IS NULL THEN hash({salted}) ELSE hash('#' || {event_id}) END "
        f"AS {HASH_2}"
    )


def raw_rows(files: Sequence[RawFile], with_event_id: bool) -> str:
    """Validated rows of NDJSON files: the ten fields (converted), [event_id], `_ok`."""
    parts = []
    for gzip in (False, True):
        group = [f for f in files if f.gzip == gzip]
        if group:
            extra = f", {EVENT_ID}" if with_event_id else ""
            parts.append(
                f"SELECT {_converted()}{extra}, {_checks()} AS {OK} "
                f"FROM {_read_ndjson(group, gzip, with_event_id)}"
            )
    return " UNION ALL ".join(parts)


def compacted_rows(files: Sequence[ParquetFile], with_event_id: bool) -> str:
    """Rows of compacted files, typed like raw rows and all `_ok`."""
    parts = []
    for layout in IdColumns:
        group = [f for f in files if f.ids is layout]
        if group:
            columns = ", ".join(f"CAST({f} AS {DUCK_TYPES[f]}) AS {f}" for f in FIELDS)
            if with_event_id:
                columns += f", {_stored_id(layout)} AS {EVENT_ID}"
            paths = _path_list(f.sql_path for f in group)
            parts.append(f"SELECT {columns}, true AS {OK} FROM read_parquet({paths})")
    return " UNION ALL ".join(parts)


def _stored_id(layout: IdColumns) -> str:
    """`event_id` as the compacted file stores it, exactly as it was archived."""
    if layout is IdColumns.SPLIT:
        return (
            f"CASE WHEN {ID_OFFSET} IS NULL THEN {ID_SOURCE} "
            f"ELSE {ID_SOURCE} || ':' || {ID_OFFSET}::VARCHAR END"
        )
    return EVENT_ID if layout is IdColumns.WHOLE else "NULL::VARCHAR"


def window_filter(since: datetime | None, until: datetime | None) -> str:
    """Keep malformed rows (to count them) and events inside [since, until).

    The window comes first: DuckDB evaluates an OR's terms in the order written, the second
    only for rows the first did not keep, and pushing this filter below the reader's
    projection copies `_ok`'s checks into it. Written `NOT _ok OR ...`, every row paid for
    the checks twice (a third more CPU over a one-hour window); this way only rows outside
    the window do."""
    bounds = []
    if since is not None:
        bounds.append(f"time_local >= TIMESTAMP '{since.isoformat(sep=' ')}'")
    if until is not None:
        bounds.append(f"time_local < TIMESTAMP '{until.isoformat(sep=' ')}'")
    return f" WHERE ({' AND '.join(bounds)}) OR NOT {OK}" if bounds else ""


def part_sql(
    raw: Sequence[RawFile],
    compacted: Sequence[ParquetFile],
    columns: Sequence[str],
    dedup: bool,
    since: datetime | None = None,
    until: datetime | None = None,
    hash_columns: bool = False,
    with_event_id: bool = False,
) -> str:
    """One query of the trusted reader: `columns`, `_ok` and, with `dedup`, the hashes.

    With `hash_columns` a part without `dedup` has the hash columns too, as NULLs, so that
    every part of a read has the same columns; `event_id` is read for `dedup` (the hashes) or
    `with_event_id`.
    """
    ids = dedup or with_event_id
    sources = [s for s in (raw_rows(raw, ids), compacted_rows(compacted, ids)) if s]
    if not sources:
        raise ValueError("a part needs at least one file")
    inner = " UNION ALL ".join(f"({s})" for s in sources)
    selected = [*columns, OK]
    hashes = _null_hashes() if hash_columns else ""
    if dedup:
        hashes = f", {_identity_hashes(EVENT_ID)}"
    return f"SELECT {', '.join(selected)}{hashes} FROM ({inner}){window_filter(since, until)}"


# How many lines of the input one row of `identities_sql` stands for.
COPIES = "_copies"


def identities_sql(rows: str, columns: Sequence[str], dedup: bool) -> str:
    """`rows` of `part_sql` (with `columns`) as one row per event, with COPIES: the lines it
    came from. With `dedup` (the part's rows carry the identity hashes), the copies of an
    event become one row holding any copy's values (they are the same event); the malformed
    lines, never merged with an event, become one row with `_ok` false. Without, every line
    is its own row."""
    if not dedup:
        return f"SELECT {', '.join(columns)}, {OK}, 1 AS {COPIES} FROM ({rows})"
    kept = ", ".join(f"any_value({c}) AS {c}" for c in columns)
    return (
        f"SELECT {kept}, {OK}, count(*) AS {COPIES} FROM ({rows}) "
        f"GROUP BY {OK}, CASE WHEN {OK} THEN {HASH_1} END, CASE WHEN {OK} THEN {HASH_2} END"
    )


def _null_hashes() -> str:
    return f", NULL::UBIGINT AS {HASH_1}, NULL::UBIGINT AS {HASH_2}"


def empty_sql(columns: Sequence[str], hash_columns: bool) -> str:
    """No rows, with the columns of `part_sql`: what a read of no files at all gives."""
    types = DUCK_TYPES | {EVENT_ID: "VARCHAR"}
    typed = ", ".join(f"NULL::{types[c]} AS {c}" for c in columns)
    hashes = _null_hashes() if hash_columns else ""
    return f"SELECT {typed}, false AS {OK}{hashes} WHERE false"
