"""What `status` shows: the nodes by region with their state, and the stack's registered jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infra.bacalhau.client import BacalhauClient
from infra.bacalhau.states import job_state
from infra.ops.scope import HOST_LABEL, REGION_LABEL

NODE_COLUMNS = ["region", "node", "connection", "membership", "version"]
JOB_COLUMNS = ["region", "kind", "job_id", "name", "version", "state"]


def node_name(node: Mapping[str, Any]) -> str:
    info = node.get("Info") or {}
    return str(info.get("NodeID") or (info.get("Labels") or {}).get(HOST_LABEL) or "?")


def node_region(node: Mapping[str, Any], fallback: Mapping[str, str]) -> str:
    labels = (node.get("Info") or {}).get("Labels") or {}
    return str(labels.get(REGION_LABEL) or fallback.get(node_name(node), "?"))


def connection(node: Mapping[str, Any]) -> str:
    state = node.get("ConnectionState")
    if isinstance(state, Mapping) and state.get("Status"):
        return str(state["Status"])
    # Deprecated field, still sent by v1.9 orchestrators.
    return str(node.get("Connection") or "UNKNOWN")


def node_rows(
    nodes: Sequence[Mapping[str, Any]], expected: Mapping[str, str] | None
) -> list[list[Any]]:
    """Compute nodes the orchestrator knows, plus nodes the stack declared that it does not."""
    fallback = expected or {}
    rows = []
    for node in nodes:
        info = node.get("Info") or {}
        if info.get("NodeType") not in (None, "Compute", 2):
            continue
        version = (info.get("BacalhauVersion") or {}).get("GitVersion", "")
        rows.append(
            [
                node_region(node, fallback),
                node_name(node),
                connection(node),
                str(node.get("Membership") or ""),
                version,
            ]
        )
    known = {row[1] for row in rows}
    rows += [
        [region, name, "MISSING", "", ""] for name, region in fallback.items() if name not in known
    ]
    return sorted(rows, key=lambda row: (row[0], row[1]))


def job_rows(client: BacalhauClient, jobs: Mapping[str, Mapping[str, str]]) -> list[list[Any]]:
    rows = []
    for region in sorted(jobs):
        for kind, job_id in sorted(jobs[region].items()):
            job = client.get_job(job_id)
            if job is None:
                rows.append([region, kind, job_id, "", "", "NOT FOUND"])
                continue
            rows.append(
                [region, kind, job_id, job.get("Name", ""), job.get("Version", ""), job_state(job)]
            )
    return rows
