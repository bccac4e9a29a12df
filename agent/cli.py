"""Command line: `python -m agent generate|query|compact` (flags in docs/contracts.md).

Input is validated here, at the boundary; the subcommand modules take typed values.

Exit codes: 0 ok; 1 the work failed (bad SQL, a --timeout/--memory-limit/--max-rows bound,
input that cannot be read, an S3 error), with one `<command>: error: ...` line on stderr;
2 usage (a bad flag value, --logs not a folder, --output into a missing folder).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from agent.times import parse_duration, parse_instant

T = TypeVar("T")


def _argtype(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Adapt a parser raising ValueError to argparse's error reporting."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = parse.__name__
    return convert


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def _seconds(text: str) -> float:
    return parse_duration(text).total_seconds()


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = parse_duration(text).total_seconds()
    # `nan` compares false with everything: it would never time out.
    if not value > 0 or value == float("inf"):
        raise ValueError(f"must be a positive number of seconds, got {text!r}")
    return value


def _bytes(text: str) -> int:
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
             "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}  # fmt: skip
    number = text.strip().lower().rstrip("bikmg")
    unit = text.strip().lower()[len(number) :]
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise ValueError(f"not a size: {text!r} (expected e.g. 512MiB, 2GB)")
    value = int(float(number) * units[unit])
    if value < 64 << 20:
        raise ValueError(f"must be at least 64MiB, got {text!r}")
    return value


def _add_generate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("generate", help="synthetic access logs (NDJSON)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--count", type=_argtype(_positive_int), help="backfill: events")
    parser.add_argument("--start", type=_argtype(parse_instant), help="backfill: first time")
    parser.add_argument("--end", type=_argtype(parse_instant), help="backfill: end (exclusive)")
    parser.add_argument("--rate", type=_argtype(_positive_float), help="live: events per second")
    parser.add_argument(
        "--max-bytes",
        type=_argtype(_positive_int),
        default=10 * 1024 * 1024,
        help="live: rotate before the file exceeds this size (default 10 MiB)",
    )
    parser.add_argument(
        "--keep", type=_argtype(_positive_int), default=5, help="live: rotated files kept"
    )
    parser.add_argument("--output", type=Path, help="output file (default stdout)")
    parser.set_defaults(handler=_generate, subparser=parser)


def _check_output(parser: argparse.ArgumentParser, output: Path, live: bool) -> None:
    if output.is_dir():
        parser.error(f"--output {output}: is a directory, not a file")
    if not live and not output.parent.is_dir():
        parser.error(f"--output {output}: folder {output.parent} does not exist")


def _generate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    backfill = [args.count, args.start, args.end]
    if args.rate is not None:
        if any(v is not None for v in backfill):
            parser.error("--rate (live) cannot be combined with --count/--start/--end")
        if args.output is None:
            parser.error("live mode (--rate) needs --output: it rotates a file")
        _check_output(parser, args.output, live=True)
        from agent.live import run_live
        from agent.signals import install_stop_handlers

        stop = threading.Event()
        install_stop_handlers(stop)
        run_live(args.output, args.rate, args.max_bytes, args.keep, args.seed, stop)
        return 0
    if any(v is None for v in backfill):
        parser.error("backfill needs --count, --start and --end (or use --rate for live mode)")
    if args.end <= args.start:
        parser.error("--end must be after --start")
    from agent.generate import backfill_lines, write_lines

    lines = backfill_lines(args.seed, args.count, args.start, args.end)
    if args.output is None:
        write_lines(lines, sys.stdout.write)
        sys.stdout.flush()
        return 0
    _check_output(parser, args.output, live=False)
    try:
        with args.output.open("w", encoding="utf-8") as sink:
            write_lines(lines, sink.write)
    except OSError as error:
        sys.stderr.write(f"generate: error: {args.output}: {error.strerror or error}\n")
        return 1
    return 0


def _add_query(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from agent.discover import Layout
    from agent.named import Named
    from agent.output import Format

    parser = commands.add_parser("query", help="query access logs with DuckDB")
    parser.add_argument(
        "--logs", type=Path, required=True, help="a node's log folder or an archive root"
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--named", choices=[n.value for n in Named], help="a built-in query")
    what.add_argument("--sql", help="a SELECT against the read-only `logs` view")
    parser.add_argument(
        "--layout",
        choices=[layout.value for layout in Layout],
        default=Layout.AUTO.value,
        help="node (a log folder, read flat), archive (region=/dt=/hour= folders, or a bucket "
        "copy holding them) or auto: decided from the folder (default)",
    )
    parser.add_argument("--since", type=_argtype(parse_instant), help="ISO time or 15m/1h/2d ago")
    parser.add_argument("--until", type=_argtype(parse_instant), help="ISO time or 15m/1h/2d ago")
    parser.add_argument("--format", choices=[f.value for f in Format], default=Format.TABLE.value)
    parser.add_argument(
        "--threshold",
        type=_argtype(_positive_int),
        default=1000,
        help="security-analysis: report IPs with more requests than this (default 1000)",
    )
    parser.add_argument(
        "--limit", type=_argtype(_positive_int), default=10, help="rows in top-N queries"
    )
    parser.add_argument(
        "--timeout",
        type=_argtype(_timeout),
        default=600.0,
        help="stop a query running longer than this, in seconds or 15m (default 600)",
    )
    parser.add_argument(
        "--memory-limit",
        type=_argtype(_bytes),
        help="memory for the query's DuckDB, e.g. 512MiB (default: half the container's "
        "memory limit, or 1GiB without one)",
    )
    parser.add_argument(
        "--max-rows",
        type=_argtype(_positive_int),
        default=100_000,
        help="refuse results with more rows than this (default 100000)",
    )
    # infra.ops merges these documents across nodes (agent/partial.py).
    parser.add_argument("--partial", action="store_true", help="JSON partial aggregates")
    parser.set_defaults(handler=_query, subparser=parser)


def _query(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from agent.budget import default_budget
    from agent.discover import Layout, Window
    from agent.named import NAMED_QUERIES, NAMED_SQL, Named, named_parameters
    from agent.output import Format, write_rows
    from agent.query import Cancelled, Limits, QueryError, Trusted, run_query

    if not args.logs.is_dir():
        parser.error(f"--logs {args.logs}: not a directory")
    if args.since and args.until and args.until <= args.since:
        parser.error("--until must be after --since")
    trusted = None
    if args.named is not None:
        sql = NAMED_SQL[Named(args.named)]
        parameters = named_parameters(sql, args.limit, args.threshold)
        trusted = Trusted(NAMED_QUERIES[Named(args.named)])
    else:
        sql, parameters = args.sql, {}
    from agent.signals import Cancellation, cancel_on_signals

    cancellation = Cancellation()
    budget = default_budget(args.memory_limit)
    limits = Limits(args.timeout, budget.memory_bytes, budget.threads, args.max_rows, cancellation)
    window = Window(args.since, args.until)
    with cancel_on_signals(cancellation):
        if args.partial:  # infra.ops merges these documents across nodes (agent/partial.py)
            from agent.partial import named_plan, sql_plan, write_partial

            named = Named(args.named) if args.named is not None else None
            plan = named_plan(named, args.limit, args.threshold) if named else sql_plan(args.sql)
            extra = (limits, Layout(args.layout))
            return write_partial(args.logs, plan, window, sys.stdout, sys.stderr, *extra)
        try:
            result = run_query(
                args.logs, sql, parameters, window, sys.stderr, limits, Layout(args.layout),
                trusted,
            )  # fmt: skip
        except Cancelled as error:
            sys.stderr.write(f"query: {error}\n")
            return 128 + error.signum
        except QueryError as error:
            sys.stderr.write(f"query: error: {error}\n")
            return 1
    write_rows(sys.stdout, result.columns, result.rows, Format(args.format))
    return 0


def _add_compact(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("compact", help="compact closed archive hours to Parquet")
    parser.add_argument("--bucket", required=True, help="the region's archive bucket")
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO); default AWS")
    parser.add_argument("--prefix", default="logs/", help="archive prefix (default logs/)")
    parser.add_argument("--region-name", help="S3 region for signing (default from AWS config)")
    parser.add_argument("--once", action="store_true", help="process what is pending and exit")
    parser.add_argument(
        "--interval",
        type=_argtype(_seconds),
        default=300.0,
        help="seconds between passes without --once (default 300; 5m also works)",
    )
    parser.add_argument(
        "--grace",
        type=_argtype(_seconds),
        default=600.0,
        help="wait this long after an hour ends before compacting it (default 10m)",
    )
    parser.add_argument(
        "--memory-limit",
        type=_argtype(_bytes),
        help="memory for DuckDB, e.g. 256MiB (default: half the container's memory limit, "
        "or 1GiB without one)",
    )
    parser.set_defaults(handler=_compact, subparser=parser)


def _compact(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from datetime import timedelta

    from botocore.exceptions import BotoCoreError, ClientError

    from agent.budget import default_budget
    from agent.compact import Compactor
    from agent.s3 import describe_failure, make_client
    from agent.signals import install_stop_handlers

    prefix = args.prefix if args.prefix.endswith("/") or not args.prefix else args.prefix + "/"
    client = make_client(args.endpoint_url, args.region_name)
    # DuckDB only streams here; the rest of the budget is Python's, Arrow's and the Parquet
    # writer's (a half took the compactor's peak to 481-504 MiB, against 455-491 MiB).
    budget = default_budget(args.memory_limit).reader(share=4)
    compactor = Compactor(client, args.bucket, prefix, timedelta(seconds=args.grace), budget=budget)
    stop = threading.Event()
    install_stop_handlers(stop)
    while True:
        try:
            summary = compactor.run_once(sys.stderr)
        except (ClientError, BotoCoreError) as error:
            message = describe_failure(error, args.bucket, args.endpoint_url)
            sys.stderr.write(f"compact: error: {message}\n")
            return 1
        if args.once:
            return 1 if summary.failed else 0
        if stop.wait(args.interval):
            return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all subcommands."""
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_generate(commands)
    _add_query(commands)
    _add_compact(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.ArgumentParser, argparse.Namespace], int] = args.handler
    # Errors are reported by the subcommand's own parser so its usage line is shown.
    return handler(args.subparser, args)
