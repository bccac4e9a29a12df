"""What the operator sees: the answer on stdout, everything about how it was obtained on stderr.

stderr carries, per region and node: failures, notes (a retried attempt, an answer read from the
bucket), each node's own warnings (malformed lines, damaged files), for archive queries what was
read, and one summary line with the number of lines skipped. Every value that came from a log or
a node is made inert before it reaches the terminal or a CSV file: stdout by the agent's own
writer (agent/output.py ``safe_cell``), stderr lines here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from agent.output import Format, terminal_text, write_rows
from infra.ops.merge import PartialAnswer, combine
from infra.ops.render import Kind
from infra.ops.results import NodeOutcome
from infra.ops.run import RegionResult

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_TIMEOUT = 0, 1, 2, 3, 4
_SKIPPED = re.compile(r"\b([1-9][\d,]*) malformed lines? skipped")
Say = Callable[[str], None]


def report(
    results: Sequence[RegionResult],
    kind: Kind,
    per_node: bool,
    fmt: Format,
    stdout: TextIO,
    stderr: TextIO,
    read_from: Mapping[str, str] | None = None,
) -> int:
    """Print the answer and the diagnostics; returns the exit code (docs/ops.md)."""

    def say(text: str) -> None:
        stderr.write(terminal_text(text) + "\n")

    outcomes: list[NodeOutcome] = []
    for result in sorted(results, key=lambda r: r.region):
        if result.error:
            say(f"{'timeout' if result.timed_out else 'error'}: {result.region}: {result.error}")
        for note in result.notes:
            say(f"{result.region}: {note}")
        for outcome in sorted(result.outcomes, key=lambda o: o.node):
            _describe(outcome, say)
        if read_from is not None and result.region in read_from:
            say(_what_was_read(result, read_from[result.region]))
        outcomes += result.outcomes
    answered = [(o.node, o.region, o.answer) for o in outcomes if o.answer and o.complete]
    combined = combine(answered, per_node)
    if combined.notice:
        say(f"not merged: {combined.notice}; showing each node's own rows")
    if answered or not all(r.error for r in results):
        write_rows(stdout, combined.columns, combined.rows, fmt)
    if answered:
        say(_summary(answered, combined.merged, kind))
    return _exit_code(results, outcomes, say)


def _describe(outcome: NodeOutcome, say: Say) -> None:
    where = f"node {outcome.node} ({outcome.region})"
    if outcome.problem:
        say(f"{where}: FAILED: {outcome.problem}")
    for note in outcome.notes:
        say(f"{where}: {note}")
    if outcome.answer is not None:
        for line in outcome.answer.diagnostics:
            if "warning" in line or "error" in line or _SKIPPED.search(line):
                say(f"{where}: {line}")


def _what_was_read(result: RegionResult, source: str) -> str:
    read = [o.answer.inputs for o in result.outcomes if o.answer is not None]
    if not read:
        return f"{result.region}: read nothing from {source} (no answer)"
    total = {key: sum(r.get(key, 0) for r in read) for key in ("files", "bytes", "compacted")}
    raw = sum(r.get("raw", 0) + r.get("plain", 0) for r in read)
    return (
        f"{result.region}: read {total['files']} objects, {_size(total['bytes'])} "
        f"({total['compacted']} compacted Parquet, {raw} raw) from {source}"
    )


def _summary(answered: Sequence[tuple[str, str, PartialAnswer]], merged: bool, kind: Kind) -> str:
    regions = sorted({region for _, region, _ in answered})
    counts = [answer.malformed_lines for _, _, answer in answered]
    skipped = sum(c for c in counts if c is not None)
    unknown = sum(c is None for c in counts)
    what = "merged answer" if merged else "answers per node"
    line = (
        f"{what} from {len(answered)} {'node' if kind is Kind.OPS else 'job'}"
        f"{'s' if len(answered) != 1 else ''} in {len(regions)} region"
        f"{'s' if len(regions) != 1 else ''} ({', '.join(regions)}); "
        f"{skipped} malformed lines skipped"
    )
    if unknown:
        line += f" ({unknown} did not report how many)"
    return line


def _exit_code(results: Sequence[RegionResult], outcomes: Sequence[NodeOutcome], say: Say) -> int:
    if any(r.timed_out for r in results):
        return EXIT_TIMEOUT
    if any(r.error for r in results):
        return EXIT_ERROR
    complete = sum(outcome.complete for outcome in outcomes)
    if complete == len(outcomes):
        return EXIT_OK
    say(f"partial result: {complete} of {len(outcomes)} nodes answered in full")
    return EXIT_PARTIAL


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"
