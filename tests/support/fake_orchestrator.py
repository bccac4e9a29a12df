"""An in-process stand-in for a Bacalhau v1.9 orchestrator, serving real HTTP on 127.0.0.1.

It follows the API semantics the job resource relies on:
- PUT /api/v1/orchestrator/jobs upserts by namespace and Name; an unchanged spec is refused with
  400 unless Force is set; every accepted change bumps Version (and Revision).
- GET /api/v1/orchestrator/jobs/{id} answers 404 for an unknown ID.
- DELETE /api/v1/orchestrator/jobs/{id} stops the job (400 if it already ended).
- GET .../jobs/{id}/executions and GET /api/v1/orchestrator/nodes answer realistic shapes.

Every request's query and body is validated against the published OpenAPI spec when one is given
(violations answer 400 and are recorded); every 200 answer is validated too. Tests inject
failures (``fail_next``), executions with outputs, failures and delays (``add_execution``), nodes
(``add_node``) and out-of-band changes (``set_job_state``, ``forget_job``).

For commands that submit a job and wait for it, ``on_submit`` callbacks see each accepted job (to
inject its executions), and ``settle_jobs`` lets a job end as the ops scheduler ends one: once
every execution of its current version is terminal, Completed, or Failed if any failed.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from infra.bacalhau.spec import SERVER_SET_FIELDS, normalize
from tests.support.swagger import SwaggerSpec

_TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
_TERMINAL_EXECUTION = frozenset({"Completed", "Failed", "Cancelled", "BidRejected"})
_ROUTES = [
    ("GET", "/api/v1/orchestrator/jobs"),
    ("PUT", "/api/v1/orchestrator/jobs"),
    ("GET", "/api/v1/orchestrator/jobs/{id}/executions"),
    ("GET", "/api/v1/orchestrator/jobs/{id}"),
    ("DELETE", "/api/v1/orchestrator/jobs/{id}"),
    ("GET", "/api/v1/orchestrator/nodes"),
]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class _Execution:
    payload: dict[str, Any]
    final_state: str
    ready_at: float


@dataclass
class _Failure:
    status: int
    message: str
    remaining: int


@dataclass
class FakeOrchestrator:
    """Start with ``with FakeOrchestrator(spec) as orchestrator:``; ``url`` is its API base."""

    swagger: SwaggerSpec | None = None
    api_key: str | None = None
    settle_jobs: bool = False
    on_submit: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    spec_violations: list[str] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _executions: dict[str, list[_Execution]] = field(default_factory=dict)
    _nodes: list[dict[str, Any]] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeOrchestrator:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server = self._server
        # A short poll interval keeps shutdown, and so every test using the stand-in, fast.
        threading.Thread(target=lambda: server.serve_forever(0.02), daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- observation -----------------------------------------------------------------------
    @property
    def writes(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method in ("PUT", "POST", "DELETE")]

    def job_by_name(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        return next(
            (j for j in self.jobs.values() if j["Name"] == name and j["Namespace"] == namespace),
            None,
        )

    # -- injection -------------------------------------------------------------------------
    def fail_next(self, status: int, message: str = "injected failure", times: int = 1) -> None:
        """The next ``times`` requests answer ``status`` with ``message``."""
        self._failures.append(_Failure(status, message, times))

    def set_job_state(self, job_id: str, state: str, message: str = "") -> None:
        self.jobs[job_id]["State"] = {"StateType": state, "Message": message}

    def forget_job(self, job_id: str) -> None:
        del self.jobs[job_id]

    def add_node(
        self, node_id: str, labels: dict[str, str], connected: bool = True, approved: bool = True
    ) -> None:
        self._nodes.append(
            {
                "Info": {
                    "NodeID": node_id,
                    "NodeType": "Compute",
                    "Labels": labels,
                    "BacalhauVersion": {"GitVersion": "v1.9.3", "Major": "1", "Minor": "9"},
                    "ComputeNodeInfo": {
                        "ExecutionEngines": ["docker"],
                        "StorageSources": ["local", "s3", "urlDownload"],
                        "Publishers": ["local", "noop", "s3"],
                        "RunningExecutions": 0,
                        "EnqueuedExecutions": 0,
                        "MaxCapacity": {"CPU": 2, "Memory": 4 * 2**30, "Disk": 20 * 2**30},
                    },
                },
                "Membership": "APPROVED" if approved else "PENDING",
                "ConnectionState": {
                    "Status": "CONNECTED" if connected else "DISCONNECTED",
                    "LastHeartbeat": "2025-01-01T00:00:00Z",
                },
            }
        )

    def add_execution(
        self,
        job_id: str,
        node_id: str,
        stdout: str = "",
        stderr: str = "",
        exit_code: int = 0,
        state: str = "Completed",
        delay: float = 0.0,
        error: str = "",
        stdout_truncated: bool = False,
        published_result: dict[str, Any] | None = None,
    ) -> str:
        """An execution of ``job_id`` on ``node_id`` that reports Running until ``delay``
        seconds have passed, then ``state`` with the given output (and ``published_result``,
        the publisher's SpecConfig)."""
        job = self.jobs[job_id]
        execution_id = f"e-{uuid.uuid4()}"
        now = time.time_ns()
        payload = {
            "ID": execution_id,
            "JobID": job_id,
            "Namespace": job["Namespace"],
            "NodeID": node_id,
            "EvalID": str(uuid.uuid4()),
            "JobVersion": job["Version"],
            "Revision": 1,
            "CreateTime": now,
            "ModifyTime": now,
            "DesiredState": {"StateType": "Running"},
            "RunOutput": {"Stdout": stdout, "stderr": stderr, "ExitCode": exit_code},
        }
        if error:
            payload["RunOutput"]["ErrorMsg"] = error
        if stdout_truncated:
            payload["RunOutput"]["StdoutTruncated"] = True
        if published_result is not None:
            payload["PublishedResult"] = published_result
        self._executions.setdefault(job_id, []).append(
            _Execution(payload, state, time.monotonic() + delay)
        )
        return execution_id

    # -- request handling ------------------------------------------------------------------
    def handle(self, request: RecordedRequest) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(request)
            if self._failures:
                failure = self._failures[0]
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failures.pop(0)
                return failure.status, {"Status": failure.status, "Message": failure.message}
            if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
                return 401, {"Status": 401, "Message": "missing or invalid API key"}
            route = _match(request.method, request.path)
            if route is None:
                return 404, {"Status": 404, "Message": f"no route {request.method} {request.path}"}
            template, params = route
            violations = self._request_violations(request, template)
            if violations:
                self.spec_violations.extend(violations)
                return 400, {"Status": 400, "Message": "; ".join(violations)}
            status, answer = self._dispatch(request, template, params)
            if status == 200 and self.swagger is not None:
                definition = self.swagger.response_definition(request.method, template)
                self.spec_violations.extend(self.swagger.errors(definition, answer))
            return status, answer

    def _request_violations(self, request: RecordedRequest, template: str) -> list[str]:
        if self.swagger is None:
            return []
        violations = self.swagger.query_errors(request.method, template, request.query)
        definition = self.swagger.body_definition(request.method, template)
        if definition is not None:
            violations += self.swagger.errors(definition, request.body)
        return violations

    def _dispatch(
        self, request: RecordedRequest, template: str, params: dict[str, str]
    ) -> tuple[int, Any]:
        key = (request.method, template)
        if key == ("PUT", "/api/v1/orchestrator/jobs"):
            return self._put_job(request.body)
        if key == ("GET", "/api/v1/orchestrator/jobs"):
            return 200, {"Items": list(self.jobs.values())}
        if key == ("GET", "/api/v1/orchestrator/nodes"):
            return 200, {"Nodes": self._nodes}
        job = self.jobs.get(params["id"])
        if job is None:
            return 404, {"Status": 404, "Message": f"job not found: {params['id']}"}
        if key == ("GET", "/api/v1/orchestrator/jobs/{id}"):
            if self.settle_jobs:
                self._settle(job)
            return 200, {"Job": job}
        if key == ("GET", "/api/v1/orchestrator/jobs/{id}/executions"):
            return 200, {"Items": self._execution_payloads(job["ID"])}
        return self._stop_job(job)

    def _put_job(self, body: dict[str, Any]) -> tuple[int, Any]:
        submitted = dict(body.get("Job") or {})
        name = submitted.get("Name")
        if not name:
            return 400, {"Status": 400, "Message": "job name is required"}
        namespace = submitted.get("Namespace") or body.get("namespace") or "default"
        existing = self.job_by_name(name, namespace)
        now = time.time_ns()
        if existing is None:
            job = {**submitted, "ID": f"j-{uuid.uuid4()}", "Namespace": namespace, "Version": 1}
            job.update(Revision=1, CreateTime=now)
        else:
            resubmitted = {**submitted, "Namespace": namespace}
            unchanged = normalize(_spec_of(existing)) == normalize(resubmitted)
            if unchanged and not body.get("Force"):
                return 400, {
                    "Status": 400,
                    "Message": f"job {name} spec is unchanged; set Force to resubmit it",
                }
            job = {**submitted, "ID": existing["ID"], "Namespace": namespace}
            job.update(
                Version=existing["Version"] + 1,
                Revision=existing["Revision"] + 1,
                CreateTime=existing["CreateTime"],
            )
        job["ModifyTime"] = now
        job["State"] = {"StateType": "Running"}
        self.jobs[job["ID"]] = job
        for callback in self.on_submit:
            callback(job)
        return 200, {"JobID": job["ID"], "EvaluationID": str(uuid.uuid4()), "Warnings": []}

    def _stop_job(self, job: dict[str, Any]) -> tuple[int, Any]:
        state = job["State"]["StateType"]
        if state in _TERMINAL:
            return 400, {"Status": 400, "Message": f"job {job['ID']} is already in state {state}"}
        job["State"] = {"StateType": "Stopped", "Message": "stopped by user"}
        job["Revision"] += 1
        return 200, {"EvaluationID": str(uuid.uuid4())}

    def _settle(self, job: dict[str, Any]) -> None:
        if job["State"]["StateType"] in _TERMINAL:
            return
        current = [
            payload
            for payload in self._execution_payloads(job["ID"])
            if payload["JobVersion"] == job["Version"]
        ]
        states = [payload["ComputeState"]["StateType"] for payload in current]
        if states and all(state in _TERMINAL_EXECUTION for state in states):
            failed = any(state != "Completed" for state in states)
            job["State"] = {"StateType": "Failed" if failed else "Completed"}
            job["Revision"] += 1

    def _execution_payloads(self, job_id: str) -> list[dict[str, Any]]:
        now = time.monotonic()
        payloads = []
        for execution in self._executions.get(job_id, []):
            done = now >= execution.ready_at
            payload = dict(execution.payload)
            payload["ComputeState"] = {"StateType": execution.final_state if done else "Running"}
            if not done:
                payload["RunOutput"] = {"Stdout": "", "stderr": "", "ExitCode": 0}
            payloads.append(payload)
        return payloads


def _spec_of(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k not in SERVER_SET_FIELDS}


def _match(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    for route_method, template in _ROUTES:
        pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"
        found = re.match(pattern, path)
        if route_method == method and found:
            return template, found.groupdict()
    return None


def _handler_for(orchestrator: FakeOrchestrator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw) if raw else None,
            )
            status, answer = orchestrator.handle(request)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_DELETE = _serve

        def log_message(self, *_: Any) -> None:
            """Keep test output quiet."""

    return Handler
