"""Installs what the metric documents need in OpenSearch and OpenSearch Dashboards.

Two dynamic resources:

`SearchBootstrap`, one per search cluster, whose provider, on create and on every content change:
  * PUTs each index template (`PUT /_index_template/<name>`),
  * PUTs the ISM policy that deletes metric indices after the retention period,
  * imports the dashboards' saved objects (`POST /api/saved_objects/_import?overwrite=true`).
Every call is idempotent, so an update simply runs them all again. Deleting the resource leaves
the templates, policy and dashboards in place: they hold no state of their own and removing a
dashboard users may have edited is not the stack's call.

`SearchWriter`, one per node region on AWS (fine-grained access control): PUTs the security role
`bacalhau_logs_writer_<region>` (write to the metric indices only) and maps exactly that region's
node IAM role ARN to it. Each region owns its role and mapping, so adding a region changes no
existing resource, and removing one DELETEs only its own mapping and role.

Authentication: basic auth from (secret) inputs, or, with `aws_region`, every request SigV4-signed
(service `es`) with the deployer's default AWS credential chain, read at call time. The provider
objects, which Pulumi pickles into the state, hold no credentials, and the outputs carry only
URLs, names, ARNs and a content digest.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import pulumi
import pulumi.dynamic
import requests
import requests.auth

METRICS_INDEX_PATTERN = "bacalhau-logs-metrics-*"
ISM_POLICY_ID = "bacalhau-logs-metrics-retention"
WRITER_ROLE_PREFIX = "bacalhau_logs_writer"
SIGV4_SERVICE = "es"
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
    # Sign requests with SigV4 for this region (an AWS OpenSearch Service domain's).
    aws_region: str | None = None

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
            aws_region=props.get("aws_region") or None,
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
                "aws_region": self.aws_region,
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


def writer_role_name(region: str) -> str:
    """`bacalhau_logs_writer_us_east_1`: one security role per node region."""
    return f"{WRITER_ROLE_PREFIX}_{region.replace('-', '_')}"


def writer_role(region: str) -> dict[str, Any]:
    """Write the metric indices (bulk, create, mapping updates), read cluster health: no more."""
    return {
        "description": f"bacalhau-logs compute nodes in {region}: write edge metrics",
        "cluster_permissions": ["cluster_monitor", "cluster_composite_ops"],
        "index_permissions": [
            {
                "index_patterns": [METRICS_INDEX_PATTERN],
                "allowed_actions": ["crud", "create_index", "indices:admin/mapping/put"],
            }
        ],
    }


class SigV4Auth(requests.auth.AuthBase):
    """Signs each prepared request with botocore's SigV4 signer and the default credential chain
    (environment, profile, SSO, instance role...), so nothing is stored or passed around."""

    def __init__(self, region: str, service: str = SIGV4_SERVICE) -> None:
        self.region = region
        self.service = service

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        import botocore.session  # deferred: only AWS stacks sign
        from botocore.auth import SigV4Auth as BotocoreSigV4
        from botocore.awsrequest import AWSRequest

        credentials = botocore.session.Session().get_credentials()
        if credentials is None:
            raise BootstrapError(
                "no AWS credentials found to sign OpenSearch requests (SigV4); configure the "
                "same credentials `pulumi up` uses for AWS"
            )
        body = request.body
        if isinstance(body, str):
            body = body.encode()
        signed = AWSRequest(
            method=request.method, url=request.url, data=body, headers=dict(request.headers)
        )
        BotocoreSigV4(credentials.get_frozen_credentials(), self.service, self.region).add_auth(
            signed
        )
        request.headers.update(dict(signed.headers.items()))
        return request


class _Client:
    """SigV4 with `aws_region`, else basic auth with `username`, else no auth; bounded retries."""

    def __init__(
        self,
        retry: RetryPolicy,
        *,
        aws_region: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._retry = retry
        self._session = requests.Session()
        if aws_region:
            self._session.auth = SigV4Auth(aws_region)
        elif username:
            self._session.auth = (username, password or "")

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
    client = _Client(
        retry or RetryPolicy(),
        aws_region=spec.aws_region,
        username=spec.username,
        password=spec.password,
    )
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
    aws_region: str | None = None


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
            "aws_region": args.aws_region,
            "digest": None,
            "imported_objects": None,
            "template_names": None,
        }
        super().__init__(SearchBootstrapProvider(), name, props, opts)


@dataclass(frozen=True)
class WriterSpec:
    opensearch_url: str
    # The node region served: it names the security role.
    region: str
    # That region's node IAM role ARN, the mapping's only backend role.
    role_arn: str
    # Sign requests with SigV4 for this region (the domain's); None sends them unsigned.
    aws_region: str | None = None

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> WriterSpec:
        region, role_arn = str(props.get("region") or ""), str(props.get("role_arn") or "")
        if not region or not role_arn:
            raise BootstrapError("a search writer needs both `region` and `role_arn`")
        return cls(
            opensearch_url=str(props["opensearch_url"]).rstrip("/"),
            region=region,
            role_arn=role_arn,
            aws_region=props.get("aws_region") or None,
        )

    @property
    def role_name(self) -> str:
        return writer_role_name(self.region)

    def client(self, retry: RetryPolicy | None) -> _Client:
        return _Client(retry or RetryPolicy(), aws_region=self.aws_region)

    def security_api(self, kind: str) -> str:
        return f"{self.opensearch_url}/_plugins/_security/api/{kind}/{self.role_name}"


def map_writer(spec: WriterSpec, retry: RetryPolicy | None = None) -> dict[str, Any]:
    """PUTs the region's writer role and maps exactly its node role to it; returns the outputs."""
    client = spec.client(retry)
    client.request("PUT", spec.security_api("roles"), json=writer_role(spec.region))
    # PUT replaces the whole mapping, so the region's node role is exactly who holds the role.
    client.request(
        "PUT",
        spec.security_api("rolesmapping"),
        json={
            "description": f"bacalhau-logs compute node role in {spec.region}",
            "backend_roles": [spec.role_arn],
        },
    )
    return {
        "opensearch_url": spec.opensearch_url,
        "region": spec.region,
        "role_arn": spec.role_arn,
        "aws_region": spec.aws_region,
        "role_name": spec.role_name,
    }


def unmap_writer(spec: WriterSpec, retry: RetryPolicy | None = None) -> None:
    """DELETEs the region's mapping, then its role; either already gone (404) is fine."""
    client = spec.client(retry)
    deleted_or_gone = frozenset({200, 404})
    client.request("DELETE", spec.security_api("rolesmapping"), ok=deleted_or_gone)
    client.request("DELETE", spec.security_api("roles"), ok=deleted_or_gone)


class SearchWriterProvider(pulumi.dynamic.ResourceProvider):
    """Holds no configuration: everything comes in with the inputs (or the stored outputs)."""

    # Another domain or region is another role: create the new one, then delete the old.
    _REPLACING = ("opensearch_url", "region")

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = map_writer(WriterSpec.from_props(props))
        return pulumi.dynamic.CreateResult(id_=outs["role_name"], outs=outs)

    def diff(
        self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]
    ) -> pulumi.dynamic.DiffResult:
        old, new = WriterSpec.from_props(_olds), WriterSpec.from_props(_news)
        changed = [
            f.name for f in fields(WriterSpec) if getattr(old, f.name) != getattr(new, f.name)
        ]
        return pulumi.dynamic.DiffResult(
            changes=bool(changed),
            replaces=[key for key in changed if key in self._REPLACING],
            delete_before_replace=False,
        )

    def update(
        self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]
    ) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=map_writer(WriterSpec.from_props(_news)))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        unmap_writer(WriterSpec.from_props(_props))


@dataclass(frozen=True)
class SearchWriterArgs:
    opensearch_url: pulumi.Input[str]
    #: the node region whose writers this maps; it names the security role
    region: str
    #: that region's node IAM role ARN
    role_arn: pulumi.Input[str]
    #: the domain's region, to SigV4-sign for; None sends requests unsigned
    aws_region: str | None = None


class SearchWriter(pulumi.dynamic.Resource, module="opensearch", name="SearchWriter"):
    """One node region's metrics writer role in OpenSearch, mapped to its node IAM role only."""

    role_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: SearchWriterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            "opensearch_url": args.opensearch_url,
            "region": args.region,
            "role_arn": args.role_arn,
            "aws_region": args.aws_region,
            "role_name": None,
        }
        super().__init__(SearchWriterProvider(), name, props, opts)
