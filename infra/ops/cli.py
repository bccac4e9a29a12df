"""Command line: `python -m infra.ops query|archive|status` (usage in docs/ops.md).

Exit codes: 0 every node answered in full; 1 the orchestrator or S3 failed us; 2 a bad flag or
stack output, found before any API call; 3 partial results (a node failed, never ran, or its
output was truncated); 4 the job did not finish within --timeout.
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

from agent.output import Format, write_rows
from agent.s3 import S3Client, make_client
from infra.bacalhau.client import BacalhauAPIError, BacalhauClient, OrchestratorUnreachable
from infra.ops import status
from infra.ops.outputs import OutputsError, StackOutputs, load_outputs
from infra.ops.published import read_stdout, stdout_location
from infra.ops.render import (
    QUERIES_DIR,
    ArchiveTarget,
    Kind,
    Query,
    check_query,
    job_name,
    render_query,
)
from infra.ops.results import NodeOutcome, merge, missing_outcomes, outcomes_of
from infra.ops.scope import (
    HOST_LABEL,
    REGION_LABEL,
    Scope,
    UsageError,
    resolve_archive_range,
    resolve_scope,
    resolve_window,
)
from infra.ops.states import job_state
from infra.ops.wait import JobTimeout, JobVanished, Polling, wait_for_job

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_TIMEOUT = 0, 1, 2, 3, 4
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
    s3_client: Callable[[str | None, str | None], S3Client] = make_client
    queries_dir: Path = QUERIES_DIR


def main(argv: Sequence[str] | None = None, runtime: Runtime | None = None) -> int:
    runtime = runtime or Runtime()
    try:
        with contextlib.redirect_stdout(runtime.stdout), contextlib.redirect_stderr(runtime.stderr):
            args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed the usage error (or --help)
        return int(stop.code or 0)
    handler: Callable[[argparse.Namespace, Runtime], int] = args.handler
    try:
        return handler(args, runtime)
    except (UsageError, OutputsError) as error:
        runtime.stderr.write(f"error: {error}\n")
        return EXIT_USAGE
    except (BacalhauAPIError, OrchestratorUnreachable, JobVanished) as error:
        runtime.stderr.write(f"error: {error}\n")
        return EXIT_ERROR
    except JobTimeout as error:
        runtime.stderr.write(f"timeout: {error}\n")
        return EXIT_TIMEOUT


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--outputs", type=Path, help="JSON from `pulumi stack output --json`")
    common.add_argument("--stack", default="dev", help="stack name (default dev)")
    common.add_argument(
        "--timeout", type=_positive_seconds, default=DEFAULT_TIMEOUT, help="seconds (default 600)"
    )
    common.add_argument("--format", type=Format, choices=list(Format), default=Format.TABLE)

    parser = argparse.ArgumentParser(prog="python -m infra.ops", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    query = commands.add_parser("query", parents=[common], help="ops query on live node logs")
    what = query.add_mutually_exclusive_group(required=True)
    what.add_argument("name", nargs="?", help="a named query")
    what.add_argument("--sql", help="a SELECT against the agent's `logs` view")
    query.add_argument("--region", action="append", default=[], help="repeatable")
    query.add_argument("--host", action="append", default=[], help="node name, repeatable")
    query.add_argument("--since", help="ISO time or 15m/1h/2d ago")
    query.add_argument("--until", help="ISO time or 15m/1h/2d ago")
    query.set_defaults(handler=_query)

    archive = commands.add_parser("archive", parents=[common], help="batch query on an archive")
    archive.add_argument("name", help="a named query")
    archive.add_argument("--region", required=True, help="the region whose archive to read")
    archive.add_argument("--date", help="YYYY-MM-DD (or YYYY-MM)")
    archive.add_argument("--from", dest="start", help="first day, YYYY-MM-DD")
    archive.add_argument("--to", dest="end", help="last day (inclusive), YYYY-MM-DD")
    archive.set_defaults(handler=_archive)

    state = commands.add_parser("status", parents=[common], help="nodes and registered jobs")
    state.set_defaults(handler=_status)
    return parser


def _query(args: argparse.Namespace, runtime: Runtime) -> int:
    query = Query(name=args.name, sql=args.sql)
    check_query(Kind.OPS, query, runtime.queries_dir)
    window = resolve_window(args.since, args.until)
    outputs = load_outputs(args.outputs, args.stack)
    scope = resolve_scope(outputs.regions, args.region, args.host, outputs.nodes())
    job = render_query(
        Kind.OPS,
        query,
        name=job_name(outputs.stack, Kind.OPS, query),
        scope=scope,
        window=window,
        agent_image=outputs.agent_image(scope.regions[0]),
        queries_dir=runtime.queries_dir,
    )
    client = _client(outputs, args.timeout, runtime)
    executions, region_of, nodes, job_problem = _run(client, job, args.timeout, runtime)
    outcomes = outcomes_of(executions, region_of)
    expected, why = _expected_nodes(scope, outputs, nodes)
    outcomes += missing_outcomes(expected, outcomes, why)
    if not outcomes:
        outcomes = [NodeOutcome("-", ",".join(scope.regions), problem=job_problem)]
    return _report(outcomes, args.format, runtime)


def _archive(args: argparse.Namespace, runtime: Runtime) -> int:
    query = Query(name=args.name)
    check_query(Kind.BATCH, query, runtime.queries_dir)
    span = resolve_archive_range(args.date, args.start, args.end)
    outputs = load_outputs(args.outputs, args.stack)
    scope = resolve_scope(outputs.regions, [args.region], [], None)
    client = _client(outputs, args.timeout, runtime)
    target = _archive_target(client, outputs, args.region, span.key_date)
    job = render_query(
        Kind.BATCH,
        query,
        name=job_name(outputs.stack, Kind.BATCH, query),
        scope=scope,
        window=span.window,
        agent_image=outputs.agent_image(args.region),
        archive=target,
        queries_dir=runtime.queries_dir,
    )
    executions, region_of, _, job_problem = _run(client, job, args.timeout, runtime)
    s3 = runtime.s3_client(outputs.s3_endpoint, target.s3_region)

    def read_published(published: Mapping[str, Any]) -> str | None:
        location = stdout_location(published)
        return read_stdout(s3, *location) if location else None

    outcomes = outcomes_of(executions, region_of, read_published)
    if not outcomes:
        outcomes = [NodeOutcome("-", args.region, problem=job_problem)]
    return _report(outcomes, args.format, runtime)


def _status(args: argparse.Namespace, runtime: Runtime) -> int:
    outputs = load_outputs(args.outputs, args.stack)
    client = _client(outputs, args.timeout, runtime)
    nodes = status.node_rows(client.list_nodes(), _region_of_outputs(outputs))
    job_rows: list[list[Any]] = []
    try:
        job_rows = status.job_rows(client, outputs.jobs())
    except OutputsError as error:  # nodes are still worth showing
        runtime.stderr.write(f"warning: {error}\n")
    if args.format is Format.TABLE:
        runtime.stdout.write("Nodes\n")
        write_rows(runtime.stdout, status.NODE_COLUMNS, nodes, Format.TABLE)
        runtime.stdout.write("\nJobs\n")
        write_rows(runtime.stdout, status.JOB_COLUMNS, job_rows, Format.TABLE)
        return EXIT_OK
    # One document for json (and csv, which cannot hold two tables): one row per node and job.
    columns = ["what", *dict.fromkeys(status.NODE_COLUMNS + status.JOB_COLUMNS)]
    rows = [_widen("node", status.NODE_COLUMNS, row, columns) for row in nodes]
    rows += [_widen("job", status.JOB_COLUMNS, row, columns) for row in job_rows]
    write_rows(runtime.stdout, columns, rows, args.format)
    return EXIT_OK


def _client(outputs: StackOutputs, timeout: float, runtime: Runtime) -> BacalhauClient:
    return BacalhauClient(
        outputs.api_url,
        api_key=runtime.environ.get("BACALHAU_API_KEY") or None,
        retry_budget=min(_RETRY_BUDGET, timeout),
    )


def _run(
    client: BacalhauClient, job: dict[str, Any], timeout: float, runtime: Runtime
) -> tuple[list[dict[str, Any]], dict[str, str], list[dict[str, Any]], str]:
    """Submit and wait; answer the executions, each node's region, the node list, and what the
    job's final state says (the only explanation when no execution was scheduled)."""
    job_id = client.put_job(job, None, force=False)
    runtime.stderr.write(f"submitted {job['Name']} as job {job_id}\n")
    finished = wait_for_job(client, job_id, timeout, runtime.stderr, runtime.polling)
    nodes = client.list_nodes()
    labelled = {status.node_name(n): status.node_region(n, {}) for n in nodes}
    region_of = {name: region for name, region in labelled.items() if region != "?"}
    state = finished.job.get("State") or {}
    job_problem = f"no execution; job {job_state(finished.job)}: {state.get('Message') or '-'}"
    return finished.executions, region_of, nodes, job_problem


def _archive_target(
    client: BacalhauClient, outputs: StackOutputs, region: str, key_date: str
) -> ArchiveTarget:
    """The S3 endpoint as the region's nodes reach it is not a stack output (the operator's
    ``s3Endpoint`` may be a different address); the region's compactor job, which the stack
    registered with it, is the authority. Without one (AWS), the region's AWS defaults apply."""
    arguments: dict[str, str] = {}
    compactor = outputs.jobs().get(region, {}).get("compactor") if "jobs" in outputs.raw else None
    if compactor:
        job = client.get_job(compactor)
        if job is None:
            raise OutputsError(f"compactor job {compactor} of region {region} is not registered")
        parameters = [str(p) for p in job["Tasks"][0]["Engine"]["Params"].get("Parameters", [])]
        arguments = dict(itertools.pairwise(parameters))
    return ArchiveTarget(
        bucket=outputs.bucket(region),
        archive_prefix=arguments.get("--prefix", outputs.archive_prefix),
        s3_endpoint=arguments.get("--endpoint-url", ""),
        s3_region=arguments.get("--region-name", region),
        key_date=key_date,
    )


def _expected_nodes(
    scope: Scope, outputs: StackOutputs, nodes: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, str], dict[str, str]]:
    """Nodes in scope (declared by the stack or known live) and why one may not have run."""
    expected = {
        name: region
        for name, region in _region_of_outputs(outputs).items()
        if region in scope.regions and (not scope.hosts or name in scope.hosts)
    }
    why = {name: "unknown to the orchestrator" for name in expected}
    for node in nodes:
        labels = (node.get("Info") or {}).get("Labels") or {}
        name = status.node_name(node)
        if labels.get(REGION_LABEL) not in scope.regions:
            continue
        if scope.hosts and labels.get(HOST_LABEL) not in scope.hosts and name not in expected:
            continue
        expected[name] = str(labels[REGION_LABEL])
        why[name] = f"node {status.connection(node)}, membership {node.get('Membership', '?')}"
    return expected, why


def _region_of_outputs(outputs: StackOutputs) -> dict[str, str]:
    nodes = outputs.nodes() or {}
    return {name: region for region, names in nodes.items() for name in names}


def _report(outcomes: Sequence[NodeOutcome], fmt: Format, runtime: Runtime) -> int:
    for outcome in sorted(outcomes, key=lambda o: (o.region, o.node)):
        where = f"node {outcome.node} ({outcome.region})"
        if outcome.problem:
            runtime.stderr.write(f"{where}: FAILED: {outcome.problem}\n")
        elif outcome.truncated:
            runtime.stderr.write(
                f"{where}: INCOMPLETE: the orchestrator truncated its output; "
                f"{len(outcome.rows)} whole rows kept, marked truncated=true ({outcome.note})\n"
            )
        elif outcome.note:
            runtime.stderr.write(f"{where}: {outcome.note}\n")
    columns, rows = merge(outcomes)
    write_rows(runtime.stdout, columns, rows, fmt)
    complete = sum(outcome.complete for outcome in outcomes)
    if complete == len(outcomes):
        return EXIT_OK
    runtime.stderr.write(f"partial result: {complete} of {len(outcomes)} nodes answered in full\n")
    return EXIT_PARTIAL


def _widen(what: str, own: Sequence[str], row: Sequence[Any], columns: Sequence[str]) -> list[Any]:
    values = dict(zip(own, row, strict=True))
    values["what"] = what
    return [values.get(column) for column in columns]


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value
