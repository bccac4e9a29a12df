"""Turn an operator's question into one Bacalhau job per region from the specs in ``jobs/queries``.

A query with its own spec file uses it. The specs of one kind differ only in the query they run,
so an agent named query without a file, or ``--sql``, runs in the shape of the kind's first spec
with the query swapped. The scope replaces the spec's single-region constraint.

Every job runs the agent with ``--partial`` (a document infra.ops merges across nodes) and
publishes its result directory to its region's bucket under ``ops-results/``, so an answer
longer than the 2 KiB the API returns still arrives whole. One job per region: a job has one
publisher, and a region's nodes may write only their own region's bucket.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.named import Named
from infra.bacalhau.spec import JobSpec
from infra.bacalhau.templates import render_job_file
from infra.ops.layout import RESULTS_PREFIX
from infra.ops.scope import ArchiveRange, Scope, UsageError, Window

QUERIES_DIR = Path(__file__).resolve().parents[2] / "jobs" / "queries"
ARCHIVE_MOUNT = "/archive"


class Kind(StrEnum):
    OPS = "ops"
    BATCH = "batch"


@dataclass(frozen=True)
class Query:
    """A named query or, with ``name`` None, ad-hoc SQL; ``limit``/``threshold`` are passed to
    the agent when set (its defaults otherwise)."""

    name: str | None = None
    sql: str | None = None
    limit: int | None = None
    threshold: int | None = None

    @property
    def label(self) -> str:
        return self.name or "sql"


@dataclass(frozen=True)
class RegionTarget:
    """A region's bucket as the region's own nodes reach it (their S3 endpoint and region)."""

    bucket: str
    archive_prefix: str
    s3_endpoint: str
    s3_region: str


def known_queries(kind: Kind, queries_dir: Path = QUERIES_DIR) -> list[str]:
    files = {path.stem for path in (queries_dir / kind.value).glob("*.yaml")}
    return sorted(files | {named.value for named in Named})


def check_query(kind: Kind, query: Query, queries_dir: Path = QUERIES_DIR) -> None:
    if query.name is not None and query.name not in known_queries(kind, queries_dir):
        command = "query" if kind is Kind.OPS else "archive"
        raise UsageError(
            f"{command} NAME: unknown query {query.name!r}; expected one of "
            f"{', '.join(known_queries(kind, queries_dir))} (or --sql for ops queries)"
        )


def job_name(stack: str, kind: Kind, query: Query, region: str, now: datetime | None = None) -> str:
    """Unique per run: Bacalhau upserts by name, so two operators must never share one."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"{stack}-{kind.value}-{query.label}-{region}-{stamp}-{secrets.token_hex(2)}"


def render_query(
    kind: Kind,
    query: Query,
    *,
    name: str,
    scope: Scope,
    window: Window,
    agent_image: str,
    target: RegionTarget,
    archive: ArchiveRange | None = None,
    queries_dir: Path = QUERIES_DIR,
) -> JobSpec:
    """The job for one region (``scope.regions[0]``); ``archive`` is required for batch."""
    if kind is Kind.BATCH and archive is None:
        raise ValueError("a batch query needs the archive range it reads")
    path = _spec_path(kind, query, queries_dir)
    region = scope.regions[0]
    variables: dict[str, object] = {
        "region": region,
        "agent_image": agent_image,
        "since": window.since or "",
        "until": window.until or "",
        "bucket": target.bucket,
        "archive_prefix": target.archive_prefix,
        "s3_endpoint": target.s3_endpoint,
        "s3_region": target.s3_region,
        "date": archive.first if archive is not None else "",
    }
    job = render_job_file(path, variables)
    job["Name"] = name
    job["Constraints"] = scope.constraints()
    task = job["Tasks"][0]
    params = task["Engine"]["Params"]
    params["Parameters"] = _query_arguments(params["Parameters"], query, window, path)
    task["Publisher"] = task.get("Publisher") or results_publisher(target)
    if archive is not None and archive.days:
        task["InputSources"] = _day_inputs(task.get("InputSources") or [], archive, region, target)
    return job


def results_publisher(target: RegionTarget) -> dict[str, Any]:
    """Bacalhau's S3 publisher (pkg/s3/types.go PublisherSpec at v1.9.3: Bucket, Key, Endpoint,
    Region, Encoding). ``Encoding: plain`` stores the result directory as separate objects, so
    ``<Key>stdout`` is the whole answer; {jobID}/{executionID} are filled in on the node
    (pkg/publisher/s3/utils.go ParsePublishedKey)."""
    return {
        "Type": "s3",
        "Params": {
            "Bucket": target.bucket,
            "Key": RESULTS_PREFIX + "{jobID}/{executionID}/",
            "Endpoint": target.s3_endpoint,
            "Region": target.s3_region,
            "Encoding": "plain",
        },
    }


def _spec_path(kind: Kind, query: Query, queries_dir: Path) -> Path:
    folder = queries_dir / kind.value
    own = folder / f"{query.name}.yaml"
    if query.name is not None and own.exists():
        return own
    specs = sorted(folder.glob("*.yaml"))
    if not specs:
        raise UsageError(f"no {kind.value} query specs in {folder}")
    return specs[0]


def _query_arguments(
    arguments: Sequence[str], query: Query, window: Window, path: Path
) -> list[str]:
    """The agent's arguments with the query swapped in, unset window flags dropped, and
    ``--partial`` plus any --limit/--threshold the operator gave."""
    selected = ["--named", query.name] if query.name is not None else ["--sql", query.sql or ""]
    replaced: dict[str, list[str]] = {"--named": selected, "--sql": selected}
    if window.since is None:
        replaced["--since"] = []
    if window.until is None:
        replaced["--until"] = []
    for flag, value in (("--limit", query.limit), ("--threshold", query.threshold)):
        if value is not None:
            replaced[flag] = []
    result: list[str] = []
    found = False
    index = 0
    while index < len(arguments):
        flag = str(arguments[index])
        if flag in replaced and index + 1 < len(arguments):
            found = found or flag in ("--named", "--sql")
            result.extend(replaced[flag])
            index += 2
            continue
        result.append(flag)
        index += 1
    if not found:
        raise UsageError(f"{path}: the task's Parameters select no query (--named or --sql)")
    for flag, value in (("--limit", query.limit), ("--threshold", query.threshold)):
        if value is not None:
            result.extend([flag, str(value)])
    if "--partial" not in result:
        result.append("--partial")
    return result


def _day_inputs(
    inputs: Sequence[dict[str, Any]], archive: ArchiveRange, region: str, target: RegionTarget
) -> list[dict[str, Any]]:
    """One S3 input per day of a range, each listing exactly that day's folder and mounted at
    /archive/dt=<day>, so the agent sees the archive's own layout. Bacalhau's S3 source takes a
    key prefix (ending in '/' or '*') and nothing narrower (explodeKey,
    pkg/storage/s3/storage.go), and a task's input targets must differ (validateInputSources,
    pkg/models/task.go)."""
    if not inputs or (inputs[0].get("Source") or {}).get("Type") != "s3":
        raise UsageError("the batch query spec must read the archive through one s3 input")
    result = []
    for day in archive.days:
        source = copy.deepcopy(inputs[0])
        source["Target"] = f"{ARCHIVE_MOUNT}/dt={day}"
        source["Source"]["Params"]["Key"] = f"{target.archive_prefix}region={region}/dt={day}/"
        result.append(source)
    return result
