"""Bacalhau jobs as Pulumi resources: ``BacalhauJob`` and the dynamic provider behind it.

- check: the spec is validated before any API call (type, Count, one task, constraint operators).
- diff: normalized specs are compared locally, so an unchanged spec makes no API write; a new
  Name, namespace or endpoint replaces the job, any other change updates it in place (one PUT,
  the orchestrator bumps the version).
- read (``pulumi refresh``): a job the orchestrator no longer knows is dropped and recreated on the
  next ``up``; a stopped or failed job stays, with its ``state`` output, so it is not resubmitted
  on every run. Rerun one with ``pulumi up --replace <urn>`` (a create resubmits with Force) or
  ``bacalhau job rerun <job_id>``. A change made out of band to a declared field shows as drift.
- delete: stops the job; a job already stopped, finished or gone counts as deleted.

The API key comes, in this order, from the resource's secret ``api_key`` input, the
``BACALHAU_API_KEY`` environment variable, or the ``orchestratorApiKey`` stack config. It is never
an output, and the provider object (pickled into the state) never holds it.

With ``ca_source`` (a self-hosted orchestrator), the orchestrator's self-signed certificate is read
from its SSM parameter at each operation (waiting a bounded time while it boots) and TLS is
verified against it; without it, against the system's trusted CAs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from infra.bacalhau.client import DEFAULT_RETRY_BUDGET, BacalhauClient
from infra.bacalhau.spec import (
    SERVER_SET_FIELDS,
    UNKNOWN,
    contains_unknown,
    project,
    same_spec,
    validate,
)
from infra.bacalhau.trust import CaSource, ca_file, read_ca

API_KEY_ENV = "BACALHAU_API_KEY"
API_KEY_CONFIG = "orchestratorApiKey"
# JobStateType names, indexed by the numbers the API spec lists.
_JOB_STATES = ("Undefined", "Pending", "Queued", "Running", "Completed", "Failed", "Stopped")
_TERMINAL_STATES = frozenset({"Completed", "Failed", "Stopped"})
_REPLACING_INPUTS = ("endpoint", "namespace")


class BacalhauJobProvider(ResourceProvider):
    """CRUD for one Bacalhau job. Pickled into the Pulumi state, so it keeps no secrets."""

    def __init__(self, retry_budget: float = DEFAULT_RETRY_BUDGET) -> None:
        super().__init__()
        self.retry_budget = retry_budget
        # Filled by configure() inside the provider process only; dropped from every pickle.
        self._configured_api_key: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_configured_api_key"] = None
        return state

    def configure(self, req: ConfigureRequest) -> None:
        value = req.config.get(API_KEY_CONFIG)
        self._configured_api_key = str(value) if value else None

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        endpoint = news.get("endpoint")
        if endpoint != UNKNOWN and not (
            isinstance(endpoint, str) and endpoint.startswith(("http://", "https://"))
        ):
            failures.append(CheckFailure("endpoint", f"{endpoint!r} is not an http(s) URL"))
        spec = news.get("spec")
        if spec == UNKNOWN:
            return CheckResult(news, failures)
        if not isinstance(spec, Mapping):
            failures.append(CheckFailure("spec", "must be a job mapping"))
        else:
            failures.extend(CheckFailure("spec", problem) for problem in validate(spec))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [key for key in _REPLACING_INPUTS if _changed(olds.get(key), news.get(key))]
        old_spec, new_spec = olds.get("spec") or {}, news.get("spec") or {}
        if contains_unknown(new_spec):
            name_changed = not isinstance(new_spec, Mapping) or _changed(
                old_spec.get("Name"), new_spec.get("Name")
            )
            return DiffResult(
                changes=True,
                replaces=[*replaces, "spec"] if name_changed else replaces,
                delete_before_replace=False,
            )
        if old_spec.get("Name") != new_spec.get("Name"):
            replaces.append("spec")
        changed = bool(replaces) or not same_spec(old_spec, new_spec)
        # Names differ on a replace, so the new job can run before the old one stops.
        return DiffResult(changes=changed, replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        client = self._client(props)
        # Force: a create is a deliberate submission, also when a stopped job of the same name
        # and spec exists (after a destroy, or a --replace to rerun it).
        job_id = client.put_job(props["spec"], props.get("namespace"), force=True)
        return CreateResult(job_id, self._outputs(props, client, job_id))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        client = self._client(news)
        job_id = client.put_job(news["spec"], news.get("namespace"), force=False)
        return UpdateResult(self._outputs(news, client, job_id))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        live = self._client(props).get_job(id_)
        if live is None:
            # An empty ID tells Pulumi the job is gone, so the next `up` creates it again.
            return ReadResult("", {})
        declared = props.get("spec") or {}
        observed = project({k: v for k, v in live.items() if k not in SERVER_SET_FIELDS}, declared)
        spec = declared if same_spec(observed, declared) else observed
        return ReadResult(id_, {**_public_inputs(props), "spec": spec, **_status(id_, live)})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        client = self._client(props)
        live = client.get_job(id_)
        if live is None or _state_name(live) in _TERMINAL_STATES:
            return
        client.stop_job(id_, reason="deleted by Pulumi")

    def _client(self, props: Mapping[str, Any]) -> BacalhauClient:
        api_key = props.get("api_key") or os.environ.get(API_KEY_ENV) or self._configured_api_key
        ca = props.get("ca_source")
        ca_bundle = ca_file(read_ca(CaSource(**ca))) if ca else None
        return BacalhauClient(
            endpoint=str(props["endpoint"]),
            api_key=api_key,
            retry_budget=self.retry_budget,
            ca_bundle=ca_bundle,
        )

    def _outputs(
        self, props: Mapping[str, Any], client: BacalhauClient, job_id: str
    ) -> dict[str, Any]:
        live = client.get_job(job_id)
        if live is None:
            raise RuntimeError(f"job {job_id} vanished right after it was submitted")
        return {**_public_inputs(props), **_status(job_id, live)}


@dataclass(frozen=True)
class BacalhauJobArgs:
    endpoint: pulumi.Input[str]
    # The fully rendered job, as PUT /api/v1/orchestrator/jobs takes it under "Job".
    spec: pulumi.Input[Mapping[str, Any]]
    namespace: pulumi.Input[str] | None = None
    api_key: pulumi.Input[str] | None = None
    # Where a self-hosted orchestrator publishes its certificate; None trusts the system's CAs.
    ca_source: CaSource | None = None


class BacalhauJob(pulumi.dynamic.Resource, module="bacalhau", name="Job"):
    """One Bacalhau job, submitted, updated, refreshed and stopped by Pulumi."""

    endpoint: pulumi.Output[str]
    spec: pulumi.Output[dict[str, Any]]
    namespace: pulumi.Output[str | None]
    job_id: pulumi.Output[str]
    version: pulumi.Output[int]
    state: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: BacalhauJobArgs,
        opts: pulumi.ResourceOptions | None = None,
        provider: BacalhauJobProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "endpoint": args.endpoint,
            "spec": args.spec,
            "namespace": args.namespace,
            "job_id": None,
            "version": None,
            "state": None,
        }
        if args.api_key is not None:
            props["api_key"] = pulumi.Output.secret(args.api_key)
        if args.ca_source is not None:
            # Public data (an SSM parameter name and region); kept so refresh and delete verify too.
            props["ca_source"] = {
                "parameter": args.ca_source.parameter,
                "region": args.ca_source.region,
            }
        super().__init__(provider or BacalhauJobProvider(), name, props, opts)


def _public_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    return {key: props.get(key) for key in ("endpoint", "spec", "namespace")}


def _status(job_id: str, live: Mapping[str, Any]) -> dict[str, Any]:
    return {"job_id": job_id, "version": live.get("Version"), "state": _state_name(live)}


def _state_name(live: Mapping[str, Any]) -> str:
    state = (live.get("State") or {}).get("StateType")
    # The API spec documents numbers; the orchestrator marshals names. Accept both.
    if isinstance(state, int) and 0 <= state < len(_JOB_STATES):
        return _JOB_STATES[state]
    return str(state) if state is not None else "Undefined"


def _changed(old: Any, new: Any) -> bool:
    if new == UNKNOWN:
        return True
    if isinstance(old, str) and isinstance(new, str):
        return old.rstrip("/") != new.rstrip("/")
    return (old or None) != (new or None)
