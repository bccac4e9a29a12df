"""Test-only compute nodes for the stand-in orchestrator: they run the real agent on each node's
log folder (or on what an S3 input would download) and report the execution the way a Bacalhau
v1.9.3 compute node does, limits included:

- stdout and stderr in the API are cut to ``MaxStdoutReturnLength``/``MaxStderrReturnLength``,
  2 KiB (``2 * datasize.KB``, KB = 1 << 10; pkg/system/utils.go), on the compute node by
  ``executor.writeOutputResult`` (pkg/executor/results.go), which also sets ``StdoutTruncated``;
  the result directory keeps them whole (``stdout``, ``stderr``, ``exitCode``;
  pkg/models/constants.go).
- a task with an S3 publisher gets its result directory published
  (pkg/publisher/s3/publisher.go): ``Encoding: plain`` as ``<Key>/<file>`` objects, otherwise one
  ``<Key>.tar.gz``; ``{jobID}``/``{executionID}``/``{nodeID}`` are filled in and a trailing ``/``
  is added for a directory (pkg/publisher/s3/utils.go ParsePublishedKey). Its PublishedResult
  is the S3 source spec it wrote (Bucket, Key, Endpoint, Region).
- an S3 input source lists every object under its Key (ending in ``*`` or ``/``) and writes each
  under the input's Target with the key's folders up to the last ``/`` of the Key removed
  (pkg/storage/s3/storage.go explodeKey, downloadObject).
- an ops job runs once on every node matching its constraints; a batch job (Count 1) on one.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.cli import main as agent_main
from tests.support.fake_orchestrator import FakeOrchestrator

API_OUTPUT_LIMIT = 2 * 1024


@dataclass
class Node:
    name: str
    region: str
    logs: Path


@dataclass
class ComputeNodes:
    """Use as a context manager: it answers every job the stand-in accepts, after the answer to
    the submission (as a real node runs after the orchestrator accepted the job), one execution
    at a time. ``s3`` is one client for every region's bucket (a moto server);
    ``endpoints_seen`` records the S3 endpoints jobs named, which only the nodes' network would
    resolve; ``submitted_at``/``answered_at`` are monotonic times, per job."""

    orchestrator: FakeOrchestrator
    nodes: list[Node]
    s3: Any = None
    executions: list[dict[str, Any]] = field(default_factory=list)
    endpoints_seen: set[str] = field(default_factory=set)
    submitted_at: dict[str, float] = field(default_factory=dict)
    answered_at: dict[str, float] = field(default_factory=dict)
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> ComputeNodes:
        self.orchestrator.on_submit.append(self.run)
        return self

    def __exit__(self, *_: object) -> None:
        self.orchestrator.on_submit.remove(self.run)
        self._pool.shutdown(wait=True)

    def run(self, job: dict[str, Any]) -> None:
        self.submitted_at[job["ID"]] = time.monotonic()
        matching = [node for node in self.nodes if _matches(job.get("Constraints") or [], node)]
        if job["Type"] == "batch":
            matching = matching[:1]
        if not matching:
            self.orchestrator.set_job_state(job["ID"], "Failed", "no matching nodes")
        else:
            self._pool.submit(self._execute_job, dict(job), matching)

    def _execute_job(self, job: dict[str, Any], nodes: list[Node]) -> None:
        results = [(node, *self._run_agent(job, node)) for node in nodes]
        # Reported together and Running for a moment, so the stand-in never settles the job
        # between two of them, and each is published before it shows as completed.
        for node, code, full_out, full_err in results:
            self._report(job, node, code, full_out, full_err)

    def _run_agent(self, job: dict[str, Any], node: Node) -> tuple[int, bytes, bytes]:
        task = job["Tasks"][0]
        with tempfile.TemporaryDirectory() as scratch:
            arguments = self._arguments(task, node, Path(scratch))
            stdout, stderr = io.StringIO(), io.StringIO()
            # redirect_stdout swaps sys.stdout for the whole process: one agent at a time.
            with self._lock, contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    code = agent_main(arguments)
                except SystemExit as stop:
                    code = int(stop.code or 0)
        return code, stdout.getvalue().encode(), stderr.getvalue().encode()

    def _report(
        self, job: dict[str, Any], node: Node, code: int, full_out: bytes, full_err: bytes
    ) -> None:
        task = job["Tasks"][0]
        published: dict[str, Any] = {}
        execution_id = self.orchestrator.add_execution(
            job["ID"],
            node.name,
            stdout=full_out[:API_OUTPUT_LIMIT].decode("utf-8", errors="replace"),
            stderr=full_err[:API_OUTPUT_LIMIT].decode("utf-8", errors="replace"),
            exit_code=code,
            stdout_truncated=len(full_out) > API_OUTPUT_LIMIT,
            published_result=published if task.get("Publisher") else None,
            delay=0.5,
        )
        self.executions.append({"job": job["ID"], "node": node.name, "stdout": full_out})
        self.answered_at.setdefault(job["ID"], time.monotonic())
        if task.get("Publisher"):
            files = {"stdout": full_out, "stderr": full_err, "exitCode": str(code).encode()}
            published.update(self._publish(task["Publisher"], job["ID"], execution_id, node, files))

    def _arguments(self, task: Mapping[str, Any], node: Node, scratch: Path) -> list[str]:
        arguments = [str(a) for a in task["Engine"]["Params"]["Parameters"]]
        mounts: dict[str, Path] = {}
        for source in task.get("InputSources") or []:
            kind = source["Source"]["Type"]
            target = source["Target"]
            if kind == "local":
                mounts[target] = node.logs
            elif kind == "s3":
                local = scratch / target.lstrip("/")
                self._download(source["Source"]["Params"], local)
                mounts[target] = local
        index = arguments.index("--logs") + 1
        root = arguments[index]
        # Several inputs mounted under one folder (/archive/dt=D): the agent reads the folder.
        arguments[index] = str(mounts.get(root) or scratch / root.lstrip("/"))
        return arguments

    def _download(self, params: Mapping[str, Any], local: Path) -> None:
        self.endpoints_seen.add(str(params.get("Endpoint", "")))
        key = str(params["Key"])
        assert key.endswith(("*", "/")), f"a prefix Key ends in * or /: {key}"
        prefix = key.rstrip("*")
        prefix_tokens = prefix.split("/")
        local.mkdir(parents=True, exist_ok=True)
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=params["Bucket"], Prefix=prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                tokens = item["Key"].split("/")
                start = 0
                for i in range(len(prefix_tokens) - 1):
                    if prefix_tokens[i] != tokens[i]:
                        break
                    start += 1
                path = local.joinpath(*tokens[start:])
                path.parent.mkdir(parents=True, exist_ok=True)
                body = self.s3.get_object(Bucket=params["Bucket"], Key=item["Key"])["Body"]
                path.write_bytes(body.read())

    def _publish(
        self,
        publisher: Mapping[str, Any],
        job_id: str,
        execution_id: str,
        node: Node,
        files: Mapping[str, bytes],
    ) -> dict[str, Any]:
        params = publisher["Params"]
        self.endpoints_seen.add(str(params.get("Endpoint", "")))
        plain = params.get("Encoding") == "plain"
        key = str(params["Key"])
        if plain and not key.endswith("/"):
            key += "/"
        if not plain and not key.endswith(".tar.gz"):
            key += ".tar.gz"
        for placeholder, value in (
            ("{nodeID}", node.name),
            ("{executionID}", execution_id),
            ("{jobID}", job_id),
        ):
            key = key.replace(placeholder, value)
        if plain:
            for name, data in files.items():
                self.s3.put_object(Bucket=params["Bucket"], Key=key + name, Body=data)
        else:
            self.s3.put_object(Bucket=params["Bucket"], Key=key, Body=_tar_gz(files))
        return {
            "Type": "s3",
            "Params": {
                "Bucket": params["Bucket"],
                "Key": key,
                "Endpoint": params.get("Endpoint", ""),
                "Region": params.get("Region", ""),
                "Filter": "",
                "VersionID": "",
                "ChecksumSHA256": "",
            },
        }


def reference_rows(folder: Path, *query: str) -> list[dict[str, Any]]:
    """What the agent answers for one query over ``folder`` as a whole: the reference a merged
    answer must equal."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert agent_main(["query", "--logs", str(folder), *query, "--format", "json"]) == 0
    rows: list[dict[str, Any]] = json.loads(out.getvalue())
    return rows


def _matches(constraints: list[Mapping[str, Any]], node: Node) -> bool:
    labels = {"region": node.region, "host": node.name}
    for constraint in constraints:
        value = labels.get(constraint["Key"])
        if constraint["Operator"] in ("in", "=", "==") and value not in constraint["Values"]:
            return False
    return True


def _tar_gz(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()
