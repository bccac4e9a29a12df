"""Render query results as a text table, one JSON array, or CSV."""

import csv
import json
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
    plain_rows = [[_plain(v) for v in row] for row in rows]
    if fmt is Format.JSON:
        json.dump([dict(zip(columns, row, strict=True)) for row in plain_rows], sink)
        sink.write("\n")
    elif fmt is Format.CSV:
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(plain_rows)
    else:
        _write_table(sink, columns, plain_rows)


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
