"""Render query results as a text table, one JSON array, or CSV.

Log fields are attacker-controlled, so text is made inert for where it goes (`safe_cell`):
- table (a terminal): control characters (C0, DEL, C1) and Unicode bidirectional overrides
  are shown as escapes (`\\x1b`, `\\r`, `\\u202e`): a value cannot clear the screen, move
  the cursor, forge rows with `\\r\\n` or reorder what is shown;
- CSV (a spreadsheet): the same escapes, and a cell that starts like a formula (`=`, `@`,
  tab, carriage return, or `+`/`-` not followed by just a number; OWASP "CSV Injection")
  gets a leading `'` so it stays text; a lone `-` (no referrer) and numbers are unchanged;
- JSON: nothing, the encoder escapes control characters itself.
Escaping is idempotent: an escaped value holds nothing a second pass would change.
"""

import csv
import json
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TextIO


class Format(StrEnum):
    """Output formats for `query --format`."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_FORMULA_START = ("=", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(value: str) -> str:
    """`value` with control and bidirectional characters shown as escapes."""
    return _UNSAFE.sub(_escape, value)


def spreadsheet_text(value: str) -> str:
    """`value` safe for a spreadsheet cell (and a terminal)."""
    signed = value.startswith(("+", "-")) and len(value) > 1 and not _NUMBER.fullmatch(value)
    if value.startswith(_FORMULA_START) or signed:
        value = "'" + value
    return terminal_text(value)


def safe_cell(value: object, fmt: Format) -> object:
    """A value made inert for `fmt`; non-text values are returned as they are."""
    if not isinstance(value, str) or fmt is Format.JSON:
        return value
    return spreadsheet_text(value) if fmt is Format.CSV else terminal_text(value)


def _plain(value: object) -> object:
    """A JSON-friendly version of a DuckDB value."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def write_rows(
    sink: TextIO, columns: Sequence[str], rows: Sequence[Sequence[object]], fmt: Format
) -> None:
    """Write `rows` to `sink` in `fmt`."""
    plain_rows = [[safe_cell(_plain(v), fmt) for v in row] for row in rows]
    names = [str(safe_cell(c, fmt)) for c in columns]
    if fmt is Format.JSON:
        json.dump([dict(zip(names, row, strict=True)) for row in plain_rows], sink)
        sink.write("\n")
    elif fmt is Format.CSV:
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(plain_rows)
    else:
        _write_table(sink, names, plain_rows)


def _write_table(sink: TextIO, columns: Sequence[str], rows: list[list[object]]) -> None:
    cells = [list(columns)] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    numeric = [
        all(isinstance(row[i], int | float) for row in rows) and bool(rows)
        for i in range(len(columns))
    ]

    def line(row: list[str]) -> str:
        parts = (
            cell.rjust(w) if num else cell.ljust(w)
            for cell, w, num in zip(row, widths, numeric, strict=True)
        )
        return "  ".join(parts).rstrip()

    sink.write(line(cells[0]) + "\n")
    sink.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells[1:]:
        sink.write(line(row) + "\n")
    sink.write(f"({len(rows)} rows)\n")
