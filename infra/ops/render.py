"""Turn an operator's question into a Bacalhau job from the specs in ``jobs/queries``.

A query with its own spec file uses it. The specs of one kind differ only in the query they run,
so an agent named query without a file, or ``--sql``, runs in the shape of the kind's first spec
with the query swapped. The scope replaces the spec's single-region constraint.
"""

from __future__ import annotations

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
from infra.ops.scope import Scope, UsageError, Window

QUERIES_DIR = Path(__file__).resolve().parents[2] / "jobs" / "queries"
# Results of batch queries are published next to, never inside, the archive prefix.
RESULTS_PREFIX = "ops-results/"


class Kind(StrEnum):
    OPS = "ops"
    BATCH = "batch"


@dataclass(frozen=True)
class Query:
    """A named query or, with ``name`` None, ad-hoc SQL."""

    name: str | None = None
    sql: str | None = None

    @property
    def label(self) -> str:
        return self.name or "sql"


@dataclass(frozen=True)
class ArchiveTarget:
    """Where a batch job reads a region's archive, as the region's own nodes reach it."""

    bucket: str
    archive_prefix: str
    s3_endpoint: str
    s3_region: str
    key_date: str


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


def job_name(stack: str, kind: Kind, query: Query, now: datetime | None = None) -> str:
    """Unique per run: Bacalhau upserts by name, so two operators must never share one."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"{stack}-{kind.value}-{query.label}-{stamp}-{secrets.token_hex(2)}"


def render_query(
    kind: Kind,
    query: Query,
    *,
    name: str,
    scope: Scope,
    window: Window,
    agent_image: str,
    archive: ArchiveTarget | None = None,
    queries_dir: Path = QUERIES_DIR,
) -> JobSpec:
    """The job to submit. ``archive`` is required for batch queries."""
    path = _spec_path(kind, query, queries_dir)
    variables: dict[str, object] = {
        "region": scope.regions[0],
        "agent_image": agent_image,
        "since": window.since or "",
        "until": window.until or "",
    }
    if archive is not None:
        variables.update(
            bucket=archive.bucket,
            archive_prefix=archive.archive_prefix,
            s3_endpoint=archive.s3_endpoint,
            s3_region=archive.s3_region,
            date=archive.key_date,
        )
    job = render_job_file(path, variables)
    job["Name"] = name
    job["Constraints"] = scope.constraints()
    task = job["Tasks"][0]
    params = task["Engine"]["Params"]
    params["Parameters"] = _query_arguments(params["Parameters"], query, window, path)
    if kind is Kind.BATCH and archive is not None and "Publisher" not in task:
        task["Publisher"] = _s3_publisher(archive)
    return job


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
    """The agent's arguments with the query swapped in and unset window flags dropped."""
    selected = ["--named", query.name] if query.name is not None else ["--sql", query.sql or ""]
    replaced: dict[str, list[str]] = {"--named": selected, "--sql": selected}
    if window.since is None:
        replaced["--since"] = []
    if window.until is None:
        replaced["--until"] = []
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
    return result


def _s3_publisher(archive: ArchiveTarget) -> dict[str, Any]:
    # Uncompressed, so the full stdout is one object (<Key>stdout) the CLI reads when the
    # orchestrator truncated it; {jobID}/{executionID} are filled in by the publisher.
    return {
        "Type": "s3",
        "Params": {
            "Bucket": archive.bucket,
            "Key": RESULTS_PREFIX + "{jobID}/{executionID}/",
            "Endpoint": archive.s3_endpoint,
            "Region": archive.s3_region,
            "Compress": False,
        },
    }
