"""Command line: `python -m infra.ops query|archive|status` (usage in docs/ops.md).

Exit codes: 0 every node answered in full; 1 the orchestrator failed us; 2 a bad flag or stack
output, found before any job was submitted; 3 partial results (a node failed, never ran, or its
answer could not be read whole); 4 a job did not finish within --timeout. With several regions
the first that applies of 4, 1, 3 wins, and what did arrive is still printed.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from agent.named import DEFAULT_LIMIT, DEFAULT_THRESHOLD
from agent.output import Format, write_rows
from agent.s3 import S3Client
from infra.bacalhau.client import BacalhauAPIError, BacalhauClient, OrchestratorUnreachable
from infra.bacalhau.trust import CaNotPublished, CaSource, ca_file, read_ca
from infra.ops import present, status
from infra.ops.outputs import OutputsError, StackOutputs, load_outputs
from infra.ops.progress import Progress
from infra.ops.published import read_result_file, result_location
from infra.ops.render import (
    QUERIES_DIR,
    Kind,
    Query,
    RegionTarget,
    check_query,
    job_name,
    known_queries,
    render_query,
)
from infra.ops.results import PublishedReader
from infra.ops.run import RegionJob, run_regions
from infra.ops.scope import (
    HOST_LABEL,
    REGION_LABEL,
    ArchiveRange,
    Scope,
    UsageError,
    check_sql,
    check_stack,
    resolve_archive_range,
    resolve_scope,
    resolve_window,
)
from infra.ops.storage import S3ClientFactory, results_client
from infra.ops.wait import Polling

EXIT_OK, EXIT_ERROR, EXIT_USAGE = present.EXIT_OK, present.EXIT_ERROR, present.EXIT_USAGE
DEFAULT_TIMEOUT = 600.0
# A client call may retry this long at most; the job's own deadline is --timeout.
_RETRY_BUDGET = 30.0


@dataclass
class Runtime:
    """What the commands touch outside their arguments; tests swap these."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    polling: Polling = field(default_factory=Polling)
    s3_client: S3ClientFactory = results_client
    queries_dir: Path = QUERIES_DIR


def main(argv: Sequence[str] | None = None, runtime: Runtime | None = None) -> int:
    runtime = runtime or Runtime()
    try:
        with contextlib.redirect_stdout(runtime.stdout), contextlib.redirect_stderr(runtime.stderr):
            args = build_parser(runtime.queries_dir).parse_args(argv)
    except SystemExit as stop:  # argparse has printed the usage error (or --help)
        return int(stop.code or 0)
    handler: Callable[[argparse.Namespace, Runtime], int] = args.handler
    try:
        return handler(args, runtime)
    except (UsageError, OutputsError) as error:
        runtime.stderr.write(f"error: {error}\n")
        return EXIT_USAGE
    except (BacalhauAPIError, OrchestratorUnreachable, CaNotPublished) as error:
        runtime.stderr.write(f"error: {error}\n")
        return EXIT_ERROR


def build_parser(queries_dir: Path = QUERIES_DIR) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra.ops",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Accepted before the command and after it; after it wins.
    _add_common(parser, top_level=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    query = commands.add_parser(
        "query",
        help="ops query on live node logs",
        description="Ask the live logs on the nodes; one merged, exact answer by default.",
        epilog="named queries: " + ", ".join(known_queries(Kind.OPS, queries_dir)),
    )
    _add_common(query, top_level=False)
    what = query.add_mutually_exclusive_group(required=True)
    what.add_argument("name", nargs="?", metavar="NAME", help="a named query (listed below)")
    what.add_argument("--sql", help="a SELECT against the agent's `logs` view")
    query.add_argument("--region", action="append", default=[], help="repeatable; default all")
    query.add_argument("--host", action="append", default=[], help="node name, repeatable")
    query.add_argument("--since", help="ISO time or 15m/1h/2d ago")
    query.add_argument("--until", help="ISO time or 15m/1h/2d ago")
    _add_answer_flags(query)
    query.set_defaults(handler=_query)

    archive = commands.add_parser(
        "archive",
        help="batch query on regions' archives",
        description="Ask the archives, one job per region reading only its own bucket.",
        epilog="named queries: " + ", ".join(known_queries(Kind.BATCH, queries_dir)),
    )
    _add_common(archive, top_level=False)
    archive.add_argument("name", metavar="NAME", help="a named query (listed below)")
    archive.add_argument("--region", action="append", default=[], help="repeatable; default all")
    archive.add_argument("--date", help="YYYY-MM-DD, YYYY-MM or YYYY")
    archive.add_argument("--from", dest="start", help="first day, YYYY-MM-DD")
    archive.add_argument("--to", dest="end", help="last day (inclusive), YYYY-MM-DD")
    _add_answer_flags(archive)
    archive.set_defaults(handler=_archive)

    state = commands.add_parser("status", help="nodes and registered jobs")
    _add_common(state, top_level=False)
    state.set_defaults(handler=_status)
    return parser


def _add_common(parser: argparse.ArgumentParser, top_level: bool) -> None:
    """The defaults live on the top level; a subcommand's copies default to SUPPRESS, so they
    override a value given before the command only when given themselves."""

    def given(value: Any) -> Any:
        return value if top_level else argparse.SUPPRESS

    parser.add_argument(
        "--outputs", type=Path, default=given(None), help="JSON of `pulumi stack output --json`"
    )
    parser.add_argument("--stack", default=given("dev"), help="stack name (default dev)")
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=given(DEFAULT_TIMEOUT),
        help="seconds to wait for the jobs (default 600)",
    )
    parser.add_argument(
        "--format",
        choices=[f.value for f in Format],
        default=given(Format.TABLE.value),
        help="default table; diagnostics only ever go to stderr",
    )


def _add_answer_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--per-node",
        action="store_true",
        help="each node's own answer, with node and region columns, instead of one merged",
    )
    parser.add_argument(
        "--limit", type=_positive_int, help=f"rows of top-N queries (default {DEFAULT_LIMIT})"
    )
    parser.add_argument(
        "--threshold",
        type=_positive_int,
        help=f"security-analysis: requests above this (default {DEFAULT_THRESHOLD})",
    )


def _query(args: argparse.Namespace, runtime: Runtime) -> int:
    stack = check_stack(args.stack)
    check_sql(args.sql)
    query = Query(args.name, args.sql, args.limit, args.threshold)
    check_query(Kind.OPS, query, runtime.queries_dir)
    window = resolve_window(args.since, args.until)
    outputs = load_outputs(args.outputs, stack)
    scope = resolve_scope(outputs.regions, args.region, args.host, outputs.nodes())
    client = _client(outputs, args.timeout, runtime)
    region_of_host = _region_of_outputs(outputs)
    jobs = []
    for region in scope.regions:
        target = _region_target(client, outputs, region)
        job = render_query(
            Kind.OPS,
            query,
            name=job_name(stack, Kind.OPS, query, region),
            scope=scope.only(region, region_of_host),
            window=window,
            agent_image=outputs.agent_image(region),
            target=target,
            queries_dir=runtime.queries_dir,
        )
        jobs.append(RegionJob(region, job, _reader(runtime, outputs, target)))

    def expected(region: str, nodes: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        return _expected_nodes(scope.only(region, region_of_host), outputs, nodes)

    progress = _progress(runtime, scope.regions)
    results = run_regions(client, Kind.OPS, jobs, expected, args.timeout, progress, runtime.polling)
    return present.report(
        results, Kind.OPS, args.per_node, Format(args.format), runtime.stdout, runtime.stderr
    )


def _archive(args: argparse.Namespace, runtime: Runtime) -> int:
    stack = check_stack(args.stack)
    query = Query(args.name, None, args.limit, args.threshold)
    check_query(Kind.BATCH, query, runtime.queries_dir)
    span = resolve_archive_range(args.date, args.start, args.end)
    outputs = load_outputs(args.outputs, stack)
    scope = resolve_scope(outputs.regions, args.region, [], None)
    client = _client(outputs, args.timeout, runtime)
    jobs, read_from = [], {}
    for region in scope.regions:
        target = _region_target(client, outputs, region)
        job = render_query(
            Kind.BATCH,
            query,
            name=job_name(stack, Kind.BATCH, query, region),
            scope=Scope((region,)),
            window=span.window,
            agent_image=outputs.agent_image(region),
            target=target,
            archive=span,
            queries_dir=runtime.queries_dir,
        )
        jobs.append(RegionJob(region, job, _reader(runtime, outputs, target)))
        read_from[region] = _archive_source(target, region, span)
    progress = _progress(runtime, scope.regions)
    results = run_regions(
        client, Kind.BATCH, jobs, lambda *_: {}, args.timeout, progress, runtime.polling
    )
    return present.report(
        results,
        Kind.BATCH,
        args.per_node,
        Format(args.format),
        runtime.stdout,
        runtime.stderr,
        read_from,
    )


def _status(args: argparse.Namespace, runtime: Runtime) -> int:
    outputs = load_outputs(args.outputs, check_stack(args.stack))
    client = _client(outputs, args.timeout, runtime)
    nodes = status.node_rows(client.list_nodes(), _region_of_outputs(outputs))
    job_rows: list[list[Any]] = []
    try:
        job_rows = status.job_rows(client, outputs.jobs())
    except OutputsError as error:  # nodes are still worth showing
        runtime.stderr.write(f"warning: {error}\n")
    fmt = Format(args.format)
    if fmt is Format.TABLE:
        for title, columns, rows in (
            ("Nodes", status.NODE_COLUMNS, nodes),
            ("Jobs", status.JOB_COLUMNS, job_rows),
        ):
            runtime.stdout.write(("\n" if title == "Jobs" else "") + title + "\n")
            write_rows(runtime.stdout, columns, rows, Format.TABLE)
        return EXIT_OK
    # One document for json (and csv, which cannot hold two tables): one row per node and job.
    columns = ["what", *dict.fromkeys(status.NODE_COLUMNS + status.JOB_COLUMNS)]
    rows = [_widen("node", status.NODE_COLUMNS, row, columns) for row in nodes]
    rows += [_widen("job", status.JOB_COLUMNS, row, columns) for row in job_rows]
    write_rows(runtime.stdout, columns, rows, fmt)
    return EXIT_OK


def _client(outputs: StackOutputs, timeout: float, runtime: Runtime) -> BacalhauClient:
    """``BACALHAU_API_KEY`` wins over the stack's own generated key; a self-hosted AWS
    orchestrator's certificate is fetched from its SSM parameter and TLS verified against it."""
    source = outputs.ca_source
    return BacalhauClient(
        outputs.api_url,
        api_key=runtime.environ.get("BACALHAU_API_KEY") or outputs.api_key,
        retry_budget=min(_RETRY_BUDGET, timeout),
        ca_bundle=_orchestrator_ca(source) if source else None,
    )


def _orchestrator_ca(source: CaSource) -> str:
    try:
        return ca_file(read_ca(source, wait_seconds=0))
    except (BotoCoreError, ClientError) as error:
        raise CaNotPublished(
            f"cannot read the orchestrator's certificate from SSM parameter {source.parameter} "
            f"({source.region}): {error}"
        ) from None


def _progress(runtime: Runtime, regions: Sequence[str]) -> Progress:
    isatty = getattr(runtime.stderr, "isatty", None)
    return Progress(runtime.stderr, regions, live=bool(isatty and isatty()))


def _region_target(client: BacalhauClient, outputs: StackOutputs, region: str) -> RegionTarget:
    """The S3 endpoint as the region's nodes reach it is not a stack output (the operator's
    ``s3Endpoint`` may be a different address); the region's compactor job, which the stack
    registered with it, is the authority. Without one (AWS), the region's AWS defaults apply."""
    arguments: dict[str, str] = {}
    compactor = outputs.job_id(region, "compactor")
    if compactor:
        job = client.get_job(compactor)
        if job is None:
            raise OutputsError(f"compactor job {compactor} of region {region} is not registered")
        parameters = [str(p) for p in job["Tasks"][0]["Engine"]["Params"].get("Parameters", [])]
        arguments = dict(itertools.pairwise(parameters))
    return RegionTarget(
        bucket=outputs.bucket(region),
        archive_prefix=arguments.get("--prefix", outputs.archive_prefix),
        s3_endpoint=arguments.get("--endpoint-url", ""),
        s3_region=arguments.get("--region-name", region),
    )


def _reader(runtime: Runtime, outputs: StackOutputs, target: RegionTarget) -> PublishedReader:
    """Reads published results with the operator's own view of S3 (``s3Endpoint``), not the
    endpoint the nodes used, and the local stack's MinIO keys when the outputs hold them."""
    clients: list[S3Client] = []

    def read(published: Mapping[str, Any], name: str) -> str | None:
        location = result_location(published, name)
        if location is None:
            return None
        if not clients:
            keys = outputs.s3_keys()
            clients.append(runtime.s3_client(outputs.s3_endpoint, target.s3_region, keys))
        return read_result_file(clients[0], *location, name)

    return read


def _archive_source(target: RegionTarget, region: str, span: ArchiveRange) -> str:
    where = f"s3://{target.bucket}/{target.archive_prefix}region={region}/"
    if span.prefix is not None:
        return f"{where}dt={span.prefix}*"
    return f"{where} ({len(span.days)} day{'s' if len(span.days) != 1 else ''}, one input each)"


def _expected_nodes(
    scope: Scope, outputs: StackOutputs, nodes: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """Nodes of one region in scope, by the name shown (the host label, else the node ID),
    and why one may not have run: declared by the stack, or known live to the orchestrator."""
    expected = {
        name: "unknown to the orchestrator"
        for name, region in _region_of_outputs(outputs).items()
        if region in scope.regions and (not scope.hosts or name in scope.hosts)
    }
    for node in nodes:
        labels = (node.get("Info") or {}).get("Labels") or {}
        if labels.get(REGION_LABEL) not in scope.regions:
            continue
        name = str(labels.get(HOST_LABEL) or status.node_name(node))
        if scope.hosts and name not in scope.hosts:
            continue
        expected[name] = f"node {status.connection(node)}, membership {node.get('Membership', '?')}"
    return expected


def _region_of_outputs(outputs: StackOutputs) -> dict[str, str]:
    nodes = outputs.nodes() or {}
    return {name: region for region, names in nodes.items() for name in names}


def _widen(what: str, own: Sequence[str], row: Sequence[Any], columns: Sequence[str]) -> list[Any]:
    values = dict(zip(own, row, strict=True))
    values["what"] = what
    return [values.get(column) for column in columns]


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    # NaN compares false with everything, so `value <= 0` alone would accept it: it never ends.
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive, finite number, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
