"""A small client for the Bacalhau v1.9 orchestrator API: the calls the job resource needs.

Failures are loud and bounded: connection errors and 5xx answers are retried with exponential
backoff until ``retry_budget`` seconds have passed, then raise ``OrchestratorUnreachable``; a 4xx
raises ``BacalhauAPIError`` at once, carrying the orchestrator's own message.
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
        """Submit ``job``; Bacalhau upserts by namespace and Name. Returns the job ID."""
        body: dict[str, Any] = {"Job": dict(job), "Force": force}
        if namespace:
            body["namespace"] = namespace
        answer = self._request("PUT", JOBS_PATH, json_body=body)
        return str(answer["JobID"])

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The job as the orchestrator holds it, or None when it does not know the ID."""
        try:
            answer = self._request("GET", f"{JOBS_PATH}/{job_id}")
        except BacalhauAPIError as error:
            if error.status == 404:
                return None
            raise
        job: dict[str, Any] = answer["Job"]
        return job

    def stop_job(self, job_id: str, reason: str) -> None:
        self._request("DELETE", f"{JOBS_PATH}/{job_id}", params={"reason": reason})

    def list_executions(self, job_id: str) -> list[dict[str, Any]]:
        """Every execution of the job, across versions and pages, oldest first."""
        return self._paged(f"{JOBS_PATH}/{job_id}/executions", "Items", {"order_by": "create_time"})

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every node the orchestrator knows (``NodeState`` objects), across pages."""
        return self._paged(NODES_PATH, "Nodes", {})

    def _paged(self, path: str, key: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query = dict(params)
        while True:
            answer = self._request("GET", path, params=query)
            items.extend(answer.get(key) or [])
            token = answer.get("NextToken")
            if not token:
                return items
            query["next_token"] = str(token)

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
                if response.status_code < 500:
                    raise BacalhauAPIError(response.status_code, method, url, _message(response))
                problem = f"HTTP {response.status_code}: {_message(response)}"
            if time.monotonic() + backoff > deadline:
                raise OrchestratorUnreachable(
                    f"{method} {url}: no usable answer from the Bacalhau orchestrator within "
                    f"{self.retry_budget:.0f}s (last error: {problem}); check the endpoint and "
                    "that the orchestrator is running"
                )
            self.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)


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
