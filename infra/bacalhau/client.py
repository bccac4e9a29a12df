"""A small client for the Bacalhau v1.9 orchestrator API: the calls the job resource needs.

Requests are shaped as the release's own client sends them (pkg/publicapi/client/v2/api_jobs.go
and pkg/publicapi/apimodels at v1.9.3): a job's namespace travels in the job, a stop reason in the
DELETE body.

Failures are loud and bounded: connection errors and 5xx answers are retried with exponential
backoff until ``retry_budget`` seconds have passed, then raise ``OrchestratorUnreachable``; a 4xx
raises ``BacalhauAPIError`` at once, carrying the orchestrator's own message. So does a 5xx that
is the orchestrator's deliberate answer rather than a fault: an error it raised without an error
code (``bacerrors.New``, which pkg/bacerrors/error.go maps to HTTP 500), such as "no changes
detected" (``JobUnchanged``) or "cannot stop job in state Completed". Retrying those cannot help.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

JOBS_PATH = "/api/v1/orchestrator/jobs"
NODES_PATH = "/api/v1/orchestrator/nodes"
DEFAULT_RETRY_BUDGET = 60.0
# (connect, read) seconds: connecting to a healthy orchestrator is fast; a submission may not be.
DEFAULT_TIMEOUT = (5.0, 30.0)
_FIRST_BACKOFF = 0.5
_MAX_BACKOFF = 8.0


class BacalhauAPIError(RuntimeError):
    """The orchestrator refused a request (4xx)."""

    def __init__(self, status: int, method: str, url: str, message: str) -> None:
        super().__init__(f"{method} {url} failed with HTTP {status}: {message}")
        self.status = status
        self.message = message


class JobUnchanged(BacalhauAPIError):
    """An update without Force whose spec the orchestrator finds equal to the stored one.

    BaseEndpoint.SubmitJob (pkg/orchestrator/endpoint.go at v1.9.3) answers it as a code-less
    bacerror, so HTTP 500: "no changes detected for new job spec. Job Name: ..., Job Id: ...".
    """


class OrchestratorUnreachable(RuntimeError):
    """No usable answer within the retry budget (connection errors, timeouts or 5xx)."""


@dataclass
class BacalhauClient:
    endpoint: str
    # Held only in memory for one operation; never part of a resource's inputs or outputs.
    api_key: str | None = field(default=None, repr=False)
    retry_budget: float = DEFAULT_RETRY_BUDGET
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    sleep: Callable[[float], None] = time.sleep
    # A CA file to verify the orchestrator's certificate against (a self-hosted orchestrator's
    # self-signed one); None verifies against the system's trusted CAs. Never disables checks.
    ca_bundle: str | None = None

    def put_job(self, job: Mapping[str, Any], namespace: str | None, force: bool) -> str:
        """Submit ``job``; Bacalhau upserts by the job's Namespace and Name. Returns the job ID.

        The orchestrator files the job under its own ``Namespace`` and ignores any namespace
        beside it in the request (orchestrator.putJob passes only Job and Force on), so
        ``namespace`` is written into the job. Raises ``JobUnchanged`` when the spec equals the
        stored one and ``force`` is off.
        """
        submitted = dict(job)
        if namespace:
            declared = submitted.get("Namespace")
            if declared and declared != namespace:
                raise ValueError(
                    f"job namespace: the job says Namespace {declared!r} but {namespace!r} was "
                    "given; set one of them"
                )
            submitted["Namespace"] = namespace
        answer = self._request("PUT", JOBS_PATH, json_body={"Job": submitted, "Force": force})
        return str(answer["JobID"])

    def get_job(self, job_id: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The job as the orchestrator holds it, or None when it does not know it. ``job_id``
        may also be a job Name, looked up in ``namespace`` (orchestrator.getJob tries the Name
        in that namespace first, then the ID)."""
        params = {"namespace": namespace} if namespace else None
        try:
            answer = self._request("GET", f"{JOBS_PATH}/{job_id}", params=params)
        except BacalhauAPIError as error:
            if error.status == 404:
                return None
            raise
        job: dict[str, Any] = answer["Job"]
        return job

    def stop_job(self, job_id: str, reason: str) -> None:
        """Stop the job. The reason goes in the JSON body, where orchestrator.stopJob reads it
        (apimodels.StopJobRequest has only a ``json:"reason"`` tag; ``?reason=`` is ignored)."""
        self._request("DELETE", f"{JOBS_PATH}/{job_id}", json_body={"reason": reason})

    def list_executions(self, job_id: str, version: int | None = None) -> list[dict[str, Any]]:
        """The executions of one version of the job (default: its latest), oldest first.

        v1.9.3 answers only the latest version's executions unless asked for another
        (BoltJobStore.getExecutions, pkg/jobstore/boltdb/store.go), all in one answer: the
        endpoint never sets NextToken (orchestrator.jobExecutions), so there is nothing to page.
        """
        params = {"order_by": "create_time"}
        if version is not None:
            params["job_version"] = str(version)
        answer = self._request("GET", f"{JOBS_PATH}/{job_id}/executions", params=params)
        return list(answer.get("Items") or [])

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every node the orchestrator knows (``NodeState`` objects), in one answer: v1.9.3's
        orchestrator.listNodes never sets NextToken."""
        answer = self._request("GET", NODES_PATH)
        return list(answer.get("Nodes") or [])

    def _request(
        self,
        method: str,
        path: str,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        url = self.endpoint.rstrip("/") + path
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        deadline = time.monotonic() + self.retry_budget
        backoff = _FIRST_BACKOFF
        while True:
            # No attempt may outlive the budget, so a hung orchestrator fails as fast as a dead one.
            remaining = max(deadline - time.monotonic(), 0.1)
            timeout = (min(self.timeout[0], remaining), min(self.timeout[1], remaining))
            try:
                response = requests.request(
                    method,
                    url,
                    json=json_body,
                    params=params,
                    headers=headers,
                    timeout=timeout,
                    verify=self.ca_bundle or True,
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                problem = f"cannot reach the orchestrator: {error.__class__.__name__}"
            else:
                if response.status_code < 400:
                    answer: dict[str, Any] = response.json() if response.content else {}
                    return answer
                if response.status_code < 500 or _is_refusal(response):
                    raise _api_error(response, method, url)
                problem = f"HTTP {response.status_code}: {_message(response)}"
            if time.monotonic() + backoff > deadline:
                raise OrchestratorUnreachable(
                    f"{method} {url}: no usable answer from the Bacalhau orchestrator within "
                    f"{self.retry_budget:.0f}s (last error: {problem}); check the endpoint and "
                    "that the orchestrator is running"
                )
            self.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)


_NO_CHANGES = "no changes detected"


def _api_error(response: requests.Response, method: str, url: str) -> BacalhauAPIError:
    message = _message(response)
    if response.status_code == 500 and message.startswith(_NO_CHANGES):
        return JobUnchanged(response.status_code, method, url, message)
    return BacalhauAPIError(response.status_code, method, url, message)


def _is_refusal(response: requests.Response) -> bool:
    """A 5xx that the orchestrator's own logic raised: apimodels.APIError JSON with an empty
    Code (bacerrors.New without WithCode). Faults carry a Code ("InternalError") or no JSON."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("Code") == "" and bool(body.get("Message"))


def _message(response: requests.Response) -> str:
    """Bacalhau answers errors as JSON with a Message field; anything else is shown as text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason
    if isinstance(body, dict):
        for key in ("Message", "message", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text.strip()
