"""Installs what the metric documents need in OpenSearch and OpenSearch Dashboards.

`SearchBootstrap` is a dynamic resource whose provider, on create and on every content change:
  * PUTs each index template (`PUT /_index_template/<name>`),
  * PUTs the ISM policy that deletes metric indices after the retention period,
  * imports the dashboards' saved objects (`POST /api/saved_objects/_import?overwrite=true`).
Every call is idempotent, so an update simply runs them all again. Deleting the resource leaves
the templates, policy and dashboards in place: they hold no state of their own and removing a
dashboard users may have edited is not the stack's call.

Credentials arrive as (secret) inputs on each call; the provider object, which Pulumi pickles
into the state, holds none, and the outputs carry only URLs, names and a content digest.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi.dynamic
import requests

METRICS_INDEX_PATTERN = "bacalhau-logs-metrics-*"
ISM_POLICY_ID = "bacalhau-logs-metrics-retention"
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class BootstrapError(RuntimeError):
    """OpenSearch or Dashboards refused a request, or never became ready."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds the wait for a search backend that may still be starting."""

    attempts: int = 36
    delay_seconds: float = 5.0
    timeout_seconds: float = 15.0


@dataclass(frozen=True)
class BootstrapSpec:
    opensearch_url: str
    dashboards_url: str
    templates: Mapping[str, str]
    dashboards_ndjson: str
    retention_days: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> BootstrapSpec:
        retention = int(props["metrics_retention_days"])
        if retention < 1:
            raise BootstrapError(f"metrics_retention_days must be >= 1, got {retention}")
        return cls(
            opensearch_url=str(props["opensearch_url"]).rstrip("/"),
            dashboards_url=str(props["dashboards_url"]).rstrip("/"),
            templates=dict(props["templates"]),
            dashboards_ndjson=str(props["dashboards_ndjson"]),
            retention_days=retention,
            username=props.get("username") or None,
            password=props.get("password") or None,
        )

    def digest(self) -> str:
        """Changes whenever anything this resource installs, or where, changes."""
        material = json.dumps(
            {
                "opensearch_url": self.opensearch_url,
                "dashboards_url": self.dashboards_url,
                "templates": dict(sorted(self.templates.items())),
                "dashboards": self.dashboards_ndjson,
                "ism": ism_policy(self.retention_days),
            },
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()


def ism_policy(retention_days: int) -> dict[str, Any]:
    """Delete metric indices `retention_days` after creation; new indices attach by pattern."""
    return {
        "policy": {
            "description": f"Delete bacalhau-logs metric indices after {retention_days} days",
            "default_state": "hot",
            "states": [
                {
                    "name": "hot",
                    "actions": [],
                    "transitions": [
                        {
                            "state_name": "delete",
                            "conditions": {"min_index_age": f"{retention_days}d"},
                        }
                    ],
                },
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            "ism_template": [{"index_patterns": [METRICS_INDEX_PATTERN], "priority": 100}],
        }
    }


class _Client:
    def __init__(self, spec: BootstrapSpec, retry: RetryPolicy) -> None:
        self._retry = retry
        self._session = requests.Session()
        if spec.username:
            self._session.auth = (spec.username, spec.password or "")

    def request(
        self, method: str, url: str, *, ok: frozenset[int] = frozenset({200, 201}), **kwargs: Any
    ) -> requests.Response:
        last_problem = "no attempt made"
        for attempt in range(1, self._retry.attempts + 1):
            try:
                response = self._session.request(
                    method, url, timeout=self._retry.timeout_seconds, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                last_problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code in ok:
                    return response
                if response.status_code not in RETRYABLE_STATUSES:
                    raise BootstrapError(
                        f"{method} {url} -> {response.status_code}: {response.text[:500]}"
                    )
                last_problem = f"HTTP {response.status_code}"
            if attempt < self._retry.attempts:
                time.sleep(self._retry.delay_seconds)
        raise BootstrapError(
            f"{method} {url} failed after {self._retry.attempts} attempts: {last_problem}"
        )


def bootstrap(spec: BootstrapSpec, retry: RetryPolicy | None = None) -> dict[str, Any]:
    """Installs templates, ISM policy and dashboards; returns the resource's outputs."""
    client = _Client(spec, retry or RetryPolicy())
    for name, body in sorted(spec.templates.items()):
        client.request(
            "PUT",
            f"{spec.opensearch_url}/_index_template/{name}",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
    _put_ism_policy(client, spec)
    imported = _import_dashboards(client, spec)
    return {
        "opensearch_url": spec.opensearch_url,
        "dashboards_url": spec.dashboards_url,
        "template_names": sorted(spec.templates),
        "ism_policy_id": ISM_POLICY_ID,
        "metrics_retention_days": spec.retention_days,
        "imported_objects": imported,
        "digest": spec.digest(),
    }


def _put_ism_policy(client: _Client, spec: BootstrapSpec) -> None:
    url = f"{spec.opensearch_url}/_plugins/_ism/policies/{ISM_POLICY_ID}"
    existing = client.request("GET", url, ok=frozenset({200, 404}))
    params: dict[str, int] = {}
    if existing.status_code == 200:
        # ISM refuses to overwrite a policy without the sequence number it replaces.
        current = existing.json()
        params = {"if_seq_no": current["_seq_no"], "if_primary_term": current["_primary_term"]}
    client.request("PUT", url, params=params, json=ism_policy(spec.retention_days))


def _import_dashboards(client: _Client, spec: BootstrapSpec) -> int:
    response = client.request(
        "POST",
        f"{spec.dashboards_url}/api/saved_objects/_import",
        params={"overwrite": "true"},
        # osd-xsrf is mandatory for API writes; the tenant header puts the dashboard where every
        # user sees it when the security plugin's multi-tenancy is on, and is ignored otherwise.
        headers={"osd-xsrf": "true", "securitytenant": "global"},
        files={
            "file": (
                "bacalhau-logs.ndjson",
                spec.dashboards_ndjson.encode(),
                "application/ndjson",
            )
        },
    )
    result = response.json()
    if not result.get("success"):
        raise BootstrapError(f"dashboard import rejected: {json.dumps(result.get('errors'))}")
    return int(result.get("successCount", 0))


class SearchBootstrapProvider(pulumi.dynamic.ResourceProvider):
    """Holds no configuration: everything, credentials included, comes in with the inputs."""

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = bootstrap(BootstrapSpec.from_props(props))
        return pulumi.dynamic.CreateResult(id_=f"search-bootstrap-{outs['digest'][:12]}", outs=outs)

    def diff(
        self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]
    ) -> pulumi.dynamic.DiffResult:
        changed = BootstrapSpec.from_props(_news).digest() != _olds.get("digest")
        return pulumi.dynamic.DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(
        self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]
    ) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=bootstrap(BootstrapSpec.from_props(_news)))


@dataclass(frozen=True)
class SearchBootstrapArgs:
    opensearch_url: pulumi.Input[str]
    dashboards_url: pulumi.Input[str]
    #: index template name -> JSON text (logstash/templates/*.json)
    templates: pulumi.Input[Mapping[str, str]]
    #: saved objects export (logstash/dashboards/*.ndjson)
    dashboards_ndjson: pulumi.Input[str]
    metrics_retention_days: pulumi.Input[int] = 14
    username: pulumi.Input[str] | None = None
    password: pulumi.Input[str] | None = None


class SearchBootstrap(pulumi.dynamic.Resource):
    """Index templates, metric retention (ISM) and dashboards for the edge metrics."""

    digest: pulumi.Output[str]
    imported_objects: pulumi.Output[int]
    template_names: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: SearchBootstrapArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            "opensearch_url": args.opensearch_url,
            "dashboards_url": args.dashboards_url,
            "templates": args.templates,
            "dashboards_ndjson": args.dashboards_ndjson,
            "metrics_retention_days": args.metrics_retention_days,
            "username": pulumi.Output.secret(args.username) if args.username else None,
            "password": pulumi.Output.secret(args.password) if args.password else None,
            "digest": None,
            "imported_objects": None,
            "template_names": None,
        }
        super().__init__(SearchBootstrapProvider(), name, props, opts)
