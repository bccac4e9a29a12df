"""An in-process stand-in for a Bacalhau v1.9.3 orchestrator, serving real HTTP on 127.0.0.1.

It answers as the release does for every rule the job resource and the operator commands rely
on; each rule names the v1.9.3 source it follows (read with ``git show v1.9.3:PATH``):
- PUT /api/v1/orchestrator/jobs (orchestrator.putJob, pkg/publicapi/endpoint/orchestrator/job.go;
  BaseEndpoint.SubmitJob, pkg/orchestrator/endpoint.go):
  - a number Go cannot decode into an integer field (``Count: 1.0``) is a 400 from the decoder;
  - a job ValidateSubmission refuses (an empty Env value, a bad Env name, a bad Type or Count, no
    task) is a 400 with the release's message (pkg/models/job.go, task.go, env_var.go);
  - the job is filed under its own Namespace (default "default"); a ``namespace`` beside the job
    in the body is ignored;
  - an existing Namespace and Name is an update. Without Force, a spec equal to the stored one
    (Job.CompareWith) is refused with HTTP 500 and no error code, "no changes detected ...";
  - an update copies only Priority, Count, Constraints, Meta, Labels and Tasks onto the stored
    job and bumps Version (BoltJobStore.updateJob, pkg/jobstore/boltdb/store.go): a new Type is
    silently kept as it was. The executions of earlier versions are cancelled, as the daemon
    scheduler does (pkg/orchestrator/scheduler/daemon_job.go);
  - the stored job is normalized as Job.Normalize and the JSON tags leave it: Namespace and Count
    defaults (0 for daemon and ops), empty maps, resource units lower-cased without spaces
    (ResourcesConfig.Normalize, pkg/models/resource.go), empty task Env, Meta, InputSources and
    ResultPaths omitted, default Publisher, Network and Timeouts, the orchestrator's
    ``bacalhau.org/`` Meta added (submitted ones dropped).
- GET /api/v1/orchestrator/jobs/{id} finds a Name in the ``namespace`` query first, then an ID
  (BoltJobStore.GetJobByIDOrName); 404 "job not found: <id>" otherwise.
- DELETE /api/v1/orchestrator/jobs/{id} reads the reason from the JSON body (apimodels.
  StopJobRequest); ``?reason=`` is ignored. Stopping a stopped job answers 200 with no evaluation;
  a completed one is a code-less 500 "cannot stop job in state Completed" (BaseEndpoint.StopJob).
- GET .../jobs/{id}/executions answers the latest version's executions unless ``job_version`` or
  ``all_job_versions`` asks otherwise (BoltJobStore.getExecutions) and never sets NextToken.
  Execution states are numbers on the wire (models.ExecutionStateType has no MarshalText), and a
  node's reason for a failure is in ComputeState.Message.
- GET /api/v1/orchestrator/nodes answers realistic shapes.

Deliberate simplifications: the scheduler is instant (an accepted job is Running at once, and its
executions are the ones tests add), and errors carry the apimodels.APIError shape.

Every request's query and body is validated against the published OpenAPI spec when one is given
(violations answer 400 and are recorded); every 200 answer is validated too. Tests inject
failures (``fail_next``), executions with outputs, failures and delays (``add_execution``), nodes
(``add_node``) and out-of-band changes (``set_job_state``, ``forget_job``).

For commands that submit a job and wait for it, ``on_submit`` callbacks see each accepted job (to
inject its executions), and ``settle_jobs`` lets a job end as the ops scheduler ends one: once
every execution of its current version is terminal, Completed, or Failed if any failed.
"""

from __future__ import annotations

import copy
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

from infra.bacalhau.states import EXECUTION_STATES
from tests.support.swagger import SwaggerSpec

ORCHESTRATOR_NODE_ID = "n-orchestrator-0"
_TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
_TERMINAL_EXECUTION = frozenset(
    {"Completed", "Failed", "Cancelled", "BidRejected", "AskForBidRejected"}
)
_DESIRED_RUNNING, _DESIRED_STOPPED = 1, 2
# Job fields BoltJobStore.updateJob copies onto the stored job.
_UPDATED_FIELDS = ("Priority", "Count", "Constraints", "Meta", "Labels", "Tasks")
_SERVER_FIELDS = frozenset({"ID", "State", "Version", "Revision", "CreateTime", "ModifyTime"})
_RESERVED_META = "bacalhau.org/"
_JOB_TYPES = ("service", "batch", "daemon", "ops")
_ENV_NAME_CHARS = re.compile(r"[A-Za-z0-9_]*")
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
    pending_state: str
    final_state: str
    ready_at: float
    message: str
    cancelled: bool = False


@dataclass
class _Failure:
    status: int
    message: str
    remaining: int
    code: str


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
    _lock: threading.RLock = field(default_factory=threading.RLock)
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
    def fail_next(
        self,
        status: int,
        message: str = "injected failure",
        times: int = 1,
        code: str = "InternalError",
    ) -> None:
        """The next ``times`` requests answer ``status`` with ``message`` and error ``code``
        (v1.9.3 answers its own code-less refusals with ``code=""``)."""
        self._failures.append(_Failure(status, message, times, code))

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
        pending_state: str = "Running",
    ) -> str:
        """An execution of the current version of ``job_id`` on ``node_id`` that reports
        ``pending_state`` until ``delay`` seconds have passed, then ``state`` with the given
        output (and ``published_result``, the publisher's SpecConfig). ``error`` is the node's
        message for a failed state (ComputeState.Message) and the run's RunOutput.ErrorMsg."""
        with self._lock:
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
                "DesiredState": {"StateType": _DESIRED_RUNNING},
                "RunOutput": {"Stdout": stdout, "stderr": stderr, "ExitCode": exit_code},
                "PreviousExecution": "",
                "NextExecution": "",
            }
            if error:
                payload["RunOutput"]["ErrorMsg"] = error
            if stdout_truncated:
                payload["RunOutput"]["StdoutTruncated"] = True
            if published_result is not None:
                payload["PublishedResult"] = published_result
            self._executions.setdefault(job_id, []).append(
                _Execution(payload, pending_state, state, time.monotonic() + delay, error)
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
                return _error(failure.status, failure.message, failure.code)
            if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
                return _error(401, "missing or invalid API key", "Unauthorized", "APIServer")
            route = _match(request.method, request.path)
            if route is None:
                return _error(404, "The requested resource/URL was not found.", "NotFound")
            template, params = route
            decode_error = self._decode_error(request, template)
            if decode_error:
                # Answered as the release answers it; not a stand-in violation to record.
                return _error(400, decode_error, "InternalError", "APIServer")
            violations = self._request_violations(request, template)
            if violations:
                self.spec_violations.extend(violations)
                return 400, {"Status": 400, "Message": "; ".join(violations)}
            status, answer = self._dispatch(request, template, params)
            if status == 200 and self.swagger is not None:
                definition = self.swagger.response_definition(request.method, template)
                self.spec_violations.extend(self.swagger.errors(definition, answer))
            return status, answer

    def _decode_error(self, request: RecordedRequest, template: str) -> str:
        """What echo's JSON binder says about a body Go cannot decode (a float for an int)."""
        if self.swagger is None:
            return ""
        definition = self.swagger.body_definition(request.method, template)
        if definition is None:
            return ""
        refused = self.swagger.go_decode_errors(definition, request.body)
        return refused[0] if refused else ""

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
            return 200, {"Items": list(self.jobs.values()), "NextToken": ""}
        if key == ("GET", "/api/v1/orchestrator/nodes"):
            return 200, {"Nodes": self._nodes}
        job = self._find(params["id"], _first(request.query, "namespace"))
        if job is None:
            return _error(404, f"job not found: {params['id']}", "NotFound", "JobStore")
        if key == ("GET", "/api/v1/orchestrator/jobs/{id}"):
            if self.settle_jobs:
                self._settle(job)
            return 200, {"Job": job}
        if key == ("GET", "/api/v1/orchestrator/jobs/{id}/executions"):
            return 200, {"Items": self._listed_executions(job, request.query), "NextToken": ""}
        body = request.body if isinstance(request.body, dict) else {}
        # encoding/json matches field names case-insensitively: "Reason" fills `json:"reason"`.
        reason = next((v for k, v in body.items() if k.lower() == "reason"), "")
        return self._stop_job(job, str(reason or ""))

    def _find(self, id_or_name: str, namespace: str) -> dict[str, Any] | None:
        """By ID, else by name in ``namespace`` (the default one when none is given), as the
        job endpoints resolve ``{id}`` (observed on v1.9.3: GET /jobs/<name> answers the job)."""
        return self.jobs.get(id_or_name) or self.job_by_name(id_or_name, namespace or "default")

    def _put_job(self, body: dict[str, Any]) -> tuple[int, Any]:
        submitted = copy.deepcopy(body.get("Job") or {})
        problems = _submission_problems(submitted)
        if problems:
            return _error(400, "\n".join(problems), "InternalError", "APIServer")
        job = _normalized(submitted)
        existing = self.job_by_name(job["Name"], job["Namespace"])
        now = time.time_ns()
        if existing is None:
            job.update(ID=f"j-{uuid.uuid4()}", Version=1, Revision=1, CreateTime=now)
        else:
            job["ID"] = existing["ID"]
            if _comparable(existing) == _comparable(job) and not body.get("Force"):
                message = (
                    "no changes detected for new job spec. "
                    f"Job Name: '{job['Name']}', Job Id: '{job['ID']}'"
                )
                return 500, {
                    **_error(500, message, "", "Bacalhau")[1],
                    "Hint": "Use the --force flag to override this warning",
                }
            updated = copy.deepcopy(existing)
            updated.update({name: job[name] for name in _UPDATED_FIELDS})
            updated.update(Version=existing["Version"] + 1, Revision=existing["Revision"] + 1)
            job = _normalized(updated)
            self._cancel_executions(job["ID"])
        job["ModifyTime"] = now
        job["State"] = {"StateType": "Running"}
        self.jobs[job["ID"]] = job
        for callback in self.on_submit:
            callback(job)
        return 200, {"JobID": job["ID"], "EvaluationID": str(uuid.uuid4()), "Warnings": []}

    def _stop_job(self, job: dict[str, Any], reason: str) -> tuple[int, Any]:
        state = job["State"]["StateType"]
        if state == "Stopped":
            return 200, {"EvaluationID": ""}
        if state == "Completed":
            return _error(500, "cannot stop job in state Completed", "", "Bacalhau")
        job["State"] = {"StateType": "Stopped", "Message": reason}
        job["Revision"] += 1
        self._cancel_executions(job["ID"])
        return 200, {"EvaluationID": str(uuid.uuid4())}

    def _cancel_executions(self, job_id: str) -> None:
        now = time.monotonic()
        for execution in self._executions.get(job_id, []):
            if _state_at(execution, now) not in _TERMINAL_EXECUTION:
                execution.cancelled = True

    def _settle(self, job: dict[str, Any]) -> None:
        if job["State"]["StateType"] in _TERMINAL:
            return
        now = time.monotonic()
        states = [
            _state_at(execution, now)
            for execution in self._executions.get(job["ID"], [])
            if execution.payload["JobVersion"] == job["Version"]
        ]
        if states and all(state in _TERMINAL_EXECUTION for state in states):
            failed = any(state != "Completed" for state in states)
            job["State"] = {"StateType": "Failed" if failed else "Completed"}
            job["Revision"] += 1

    def _listed_executions(
        self, job: dict[str, Any], query: dict[str, list[str]]
    ) -> list[dict[str, Any]]:
        version = int(_first(query, "job_version") or 0) or job["Version"]
        every_version = _first(query, "all_job_versions") == "true"
        now = time.monotonic()
        return [
            _wire(execution, now)
            for execution in self._executions.get(job["ID"], [])
            if every_version or execution.payload["JobVersion"] == version
        ]


def _state_at(execution: _Execution, now: float) -> str:
    if execution.cancelled:
        return "Cancelled"
    return execution.final_state if now >= execution.ready_at else execution.pending_state


def _wire(execution: _Execution, now: float) -> dict[str, Any]:
    """The execution as v1.9.3 marshals it: states as numbers, the node's message beside."""
    state = _state_at(execution, now)
    payload = copy.deepcopy(execution.payload)
    compute: dict[str, Any] = {"StateType": EXECUTION_STATES.index(state)}
    if state == "Failed" and execution.message:
        compute["Message"] = execution.message
    payload["ComputeState"] = compute
    if state in _TERMINAL_EXECUTION - {"Completed"}:
        payload["DesiredState"] = {"StateType": _DESIRED_STOPPED}
    if now < execution.ready_at:
        payload["RunOutput"] = {"Stdout": "", "stderr": "", "ExitCode": 0}
    return payload


def _submission_problems(job: dict[str, Any]) -> list[str]:
    """Job.ValidateSubmission's messages for what the stand-in checks (pkg/models/job.go)."""
    problems = []
    job_type = job.get("Type")
    if not job_type:
        problems.append("missing job type")
    elif job_type not in _JOB_TYPES:
        problems.append(f'invalid job type: "{job_type}"')
    count = job.get("Count", 0)
    if count < 0:
        problems.append("job count must be >= 0")
    if count > 1 and job_type in ("daemon", "ops"):
        problems.append(
            f"{job_type} jobs cannot specify count > 1 as they run on all matching nodes"
        )
    if not job.get("Tasks"):
        problems.append("missing job tasks")
    for task in job.get("Tasks") or []:
        problem = _env_problem(task.get("Env") or {})
        if problem:
            problems.append(f"task {task.get('Name', '')} validation failed: {problem}")
    return problems


def _env_problem(env: dict[str, Any]) -> str:
    """models.ValidateEnvVars (pkg/models/env_var.go): the first bad entry's message."""
    for name, value in env.items():
        if not name:
            return "environment variable name cannot be empty"
        if name != name.upper():
            return f"environment variable '{name}' must be uppercase"
        if not name[0].isalpha():
            return f"environment variable '{name}' must start with a letter"
        if not _ENV_NAME_CHARS.fullmatch(name):
            return (
                f"environment variable '{name}' can only contain letters, numbers, and underscores"
            )
        if name.upper().startswith("BACALHAU_"):
            return f"environment variable '{name}' cannot start with BACALHAU_"
        if value == "":
            return f"environment variable '{name}' cannot have empty value"
    return ""


def _normalized(job: dict[str, Any]) -> dict[str, Any]:
    """The job as v1.9.3 stores and serves it (Job.Normalize, Task.Normalize, JSON tags)."""
    job["Namespace"] = job.get("Namespace") or "default"
    if job.get("Type") in ("daemon", "ops"):
        job["Count"] = 0
    elif "Count" not in job:
        job["Count"] = 1
    job.setdefault("Priority", 0)
    meta = {k: v for k, v in (job.get("Meta") or {}).items() if not k.startswith(_RESERVED_META)}
    job["Meta"] = {**meta, f"{_RESERVED_META}requester.id": ORCHESTRATOR_NODE_ID}
    job["Labels"] = job.get("Labels") or {}
    job["Constraints"] = job.get("Constraints") or []
    for task in job.get("Tasks") or []:
        for name in ("Env", "Meta", "InputSources", "ResultPaths"):
            if not task.get(name):
                task.pop(name, None)
        resources = task.get("Resources") or {}
        task["Resources"] = {
            name: str(value).lower().replace(" ", "").replace("\n", "")
            for name, value in resources.items()
            if value
        }
        task["Publisher"] = task.get("Publisher") or {"Type": ""}
        task["Network"] = task.get("Network") or {"Type": "Default"}
        task["Timeouts"] = task.get("Timeouts") or {}
    return job


def _comparable(job: dict[str, Any]) -> dict[str, Any]:
    """What Job.CompareWith compares: no server fields, no reserved Meta."""
    kept = {k: v for k, v in job.items() if k not in _SERVER_FIELDS}
    kept["Meta"] = {k: v for k, v in kept["Meta"].items() if not k.startswith(_RESERVED_META)}
    return kept


def _error(status: int, message: str, code: str, component: str = "APIServer") -> tuple[int, Any]:
    """An apimodels.APIError (pkg/publicapi/apimodels/error.go) as the error handler writes it."""
    return status, {
        "Status": status,
        "Message": message,
        "RequestID": "",
        "Code": code,
        "Component": component,
    }


def _first(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name) or [""]
    return values[0]


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
