"""Bacalhau jobs as Pulumi resources: ``BacalhauJob`` and the dynamic provider behind it.

Every method first turns whole-number floats back into ints: the engine hands a dynamic provider
its inputs as a protobuf Struct, where every number is a double, and Bacalhau refuses ``Count:
1.0`` (see ``spec.integral_floats_to_ints``).

- check: the spec is validated before any API call (type, Count, one task, constraint operators,
  env names and empty values). A new Type under an unchanged Name is refused: Bacalhau v1.9.3
  keeps the Type of a job Name for good (below).
- diff: normalized specs are compared locally, as the orchestrator compares them, so an unchanged
  spec makes no API write. A new Name, namespace or endpoint, or any field an update does not copy
  (Bacalhau copies only Priority, Count, Constraints, Meta, Labels and Tasks), replaces the job;
  any other change updates it in place (one PUT, the orchestrator bumps the version).
- create and update: one PUT (create with Force). An update the orchestrator answers with "no
  changes detected" (the live job already has this spec) succeeds. A create or update whose Name
  already belongs to a job of another Type is refused before the PUT, since the orchestrator would
  keep the old Type and only swap the tasks.
- read (``pulumi refresh``): a job the orchestrator no longer knows is dropped and recreated on the
  next ``up``; a stopped or failed job stays, with its ``state`` output, so it is not resubmitted
  on every run. Rerun one with ``pulumi up --replace <urn>`` (a create resubmits with Force) or
  ``bacalhau job rerun <job_id>``. A change made out of band to a declared field shows as drift;
  what the orchestrator rewrites (unit case, empty maps it omits, its defaults) does not.
- delete: stops the job (reason in the request body); a job already stopped, finished or gone
  counts as deleted.

Rollouts. A PUT returns before anything runs, and updating a daemon job cancels every execution of
the previous version at once and schedules the new one on every node
(pkg/orchestrator/scheduler/daemon_job.go at v1.9.3). With ``rollout_timeout`` set, create and
update then wait, for daemon and service jobs, until the job's current version has settled. The
orchestrator of v1.9.3 never learns that an execution runs: a compute node reports only bid
answers, completions and failures (NCLMessageCreator, pkg/compute/watchers/ncl_message_creator.go),
so a running daemon execution shows New and a service one BidAccepted for as long as it runs
(observed on a real v1.9.3). The wait therefore counts the version as rolled out once the job is
Running and every execution of the version is placed on its node (New with desired state Running,
bid accepted, Running or Completed), at least one, and that picture has held unchanged for
``rollout_settle`` seconds: long enough for an image pull or a start-up to fail. Any execution
that failed or whose bid was rejected stops the wait at once with an error naming the job, the
version and each node's message; so does the job failing or being stopped. Not settling within
``rollout_timeout`` seconds is an error too, naming what is placed where. A failed wait fails the
resource, so resources that depend on it (other regions' jobs, behind a canary) are not updated.
Batch and ops jobs never wait. Changing only the rollout inputs changes nothing on the
orchestrator.

The API key comes, in this order, from the resource's secret ``api_key`` input, the
``BACALHAU_API_KEY`` environment variable, or the ``orchestratorApiKey`` stack config. It is never
an output, and the provider object (pickled into the state) never holds it.

With ``ca_source`` (a self-hosted orchestrator), the orchestrator's self-signed certificate is read
from its SSM parameter at each operation (waiting a bounded time while it boots) and TLS is
verified against it; without it, against the system's trusted CAs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

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

from infra.bacalhau.client import DEFAULT_RETRY_BUDGET, BacalhauClient, JobUnchanged
from infra.bacalhau.spec import (
    SERVER_SET_FIELDS,
    UNKNOWN,
    contains_unknown,
    fixed_field_changes,
    integral_floats_to_ints,
    job_name,
    job_namespace,
    project,
    same_spec,
    validate,
)
from infra.bacalhau.states import TERMINAL_JOB_STATES, execution_state, job_state
from infra.bacalhau.trust import CaSource, ca_file, read_ca

API_KEY_ENV = "BACALHAU_API_KEY"
API_KEY_CONFIG = "orchestratorApiKey"
# Execution states of a version that is where it should be: the node has it and has not failed.
# "New" counts only once the orchestrator wants it running (no bid round: daemon jobs).
_EXECUTION_PLACED = frozenset(
    {"New", "AskForBidAccepted", "BidAccepted", "Running", "Publishing", "Completed"}
)
_EXECUTION_FAILED = frozenset({"Failed", "BidRejected", "AskForBidRejected"})
# models.ExecutionDesiredStateType: Pending, Running, Stopped (numbers on the wire).
_DESIRED_RUNNING = 1
# Batch and ops jobs end by design; only long-running ones have a rollout to wait for.
_ROLLOUT_JOB_TYPES = frozenset({"daemon", "service"})
_PUBLIC_INPUTS = ("endpoint", "spec", "namespace", "rollout_timeout", "rollout_settle")
DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_ROLLOUT_SETTLE = 60.0


class RolloutFailed(RuntimeError):
    """The job's new version failed on a node (or the job failed) while Pulumi waited for it."""


class RolloutTimeout(RuntimeError):
    """The job's new version was not running everywhere within ``rollout_timeout``."""


class BacalhauJobProvider(ResourceProvider):
    """CRUD for one Bacalhau job. Pickled into the Pulumi state, so it keeps no secrets."""

    def __init__(
        self,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        super().__init__()
        self.retry_budget = retry_budget
        self.poll_interval = poll_interval
        # Filled by configure() inside the provider process only; dropped from every pickle.
        self._configured_api_key: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_configured_api_key"] = None
        return state

    def configure(self, req: ConfigureRequest) -> None:
        value = req.config.get(API_KEY_CONFIG)
        self._configured_api_key = str(value) if value else None

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        olds, news = integral_floats_to_ints(olds), integral_floats_to_ints(news)
        failures = []
        endpoint = news.get("endpoint")
        if endpoint != UNKNOWN and not (
            isinstance(endpoint, str) and endpoint.startswith(("http://", "https://"))
        ):
            failures.append(CheckFailure("endpoint", f"{endpoint!r} is not an http(s) URL"))
        failures.extend(_rollout_problems(news))
        spec = news.get("spec")
        if spec == UNKNOWN:
            return CheckResult(news, failures)
        if not isinstance(spec, Mapping):
            failures.append(CheckFailure("spec", "must be a job mapping"))
            return CheckResult(news, failures)
        failures.extend(CheckFailure("spec", problem) for problem in validate(spec))
        namespace = news.get("namespace")
        declared_namespace = spec.get("Namespace")
        conflicting = declared_namespace not in (None, "", UNKNOWN, namespace)
        if namespace and conflicting:
            failures.append(
                CheckFailure(
                    "namespace",
                    f"{namespace!r} differs from the job's Namespace {declared_namespace!r}; "
                    "set one of them",
                )
            )
        old_spec = olds.get("spec")
        if isinstance(old_spec, Mapping) and not contains_unknown(spec):
            old_job = _job_of(old_spec, olds.get("namespace"))
            problem = _type_change(old_job, _job_of(spec, namespace))
            if problem:
                failures.append(CheckFailure("spec", problem))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        olds, news = integral_floats_to_ints(olds), integral_floats_to_ints(news)
        replaces = [key for key in ("endpoint", "namespace") if _changed(olds, news, key)]
        old_spec, new_spec = olds.get("spec") or {}, news.get("spec") or {}
        if contains_unknown(new_spec):
            fixed_unknown = not isinstance(new_spec, Mapping) or any(
                _differs(old_spec.get(key), new_spec.get(key)) for key in ("Name", "Type")
            )
            return DiffResult(
                changes=True,
                replaces=[*replaces, "spec"] if fixed_unknown else replaces,
                delete_before_replace=False,
            )
        old_job = _job_of(old_spec, olds.get("namespace"))
        new_job = _job_of(new_spec, news.get("namespace"))
        fixed = fixed_field_changes(old_job, new_job)
        if "namespace" in replaces and "Namespace" in fixed:
            fixed.remove("Namespace")
        if fixed:
            replaces.append("spec")
        changed = bool(replaces) or not same_spec(old_job, new_job)
        # A replacement has a new Name or namespace (check refuses anything else that would need
        # one), so the new job runs before the old one stops.
        return DiffResult(changes=changed, replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        props = integral_floats_to_ints(props)
        client = self._client(props)
        job = _job_of(props["spec"], props.get("namespace"))
        _refuse_type_change(client, job)
        # Force: a create is a deliberate submission, also when a stopped job of the same name
        # and spec exists (after a destroy, or a --replace to rerun it).
        job_id = client.put_job(job, None, force=True)
        live = self._rolled_out(client, props, job_id)
        return CreateResult(job_id, {**_public_inputs(props), **_status(job_id, live)})

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        news = integral_floats_to_ints(news)
        client = self._client(news)
        job = _job_of(news["spec"], news.get("namespace"))
        _refuse_type_change(client, job)
        try:
            job_id = client.put_job(job, None, force=False)
        except JobUnchanged:
            # The orchestrator already holds this spec (a refresh saw drift that is no drift to
            # it, or an earlier update went through before its wait failed): nothing to write.
            job_id = id_
        live = self._rolled_out(client, news, job_id)
        return UpdateResult({**_public_inputs(news), **_status(job_id, live)})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        props = integral_floats_to_ints(props)
        live = self._client(props).get_job(id_)
        if live is None:
            # An empty ID tells Pulumi the job is gone, so the next `up` creates it again.
            return ReadResult("", {})
        declared = props.get("spec") or {}
        namespace = props.get("namespace")
        observed = project({k: v for k, v in live.items() if k not in SERVER_SET_FIELDS}, declared)
        unchanged = same_spec(_job_of(observed, namespace), _job_of(declared, namespace))
        spec = declared if unchanged else observed
        return ReadResult(id_, {**_public_inputs(props), "spec": spec, **_status(id_, live)})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        client = self._client(integral_floats_to_ints(props))
        live = client.get_job(id_)
        if live is None or job_state(live) in TERMINAL_JOB_STATES:
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

    def _rolled_out(
        self, client: BacalhauClient, props: Mapping[str, Any], job_id: str
    ) -> dict[str, Any]:
        """The live job once its current version has settled (see the module docstring), or at
        once without ``rollout_timeout`` or for a batch or ops job."""
        live = _live(client, job_id)
        timeout = props.get("rollout_timeout")
        if not timeout or live.get("Type") not in _ROLLOUT_JOB_TYPES:
            return live
        settle = float(props.get("rollout_settle") or DEFAULT_ROLLOUT_SETTLE)
        version = live.get("Version")
        deadline = time.monotonic() + float(timeout)
        seen: tuple[tuple[str, str], ...] = ()
        settled_since: float | None = None
        while True:
            executions = [
                execution
                for execution in client.list_executions(job_id, version)
                if execution.get("JobVersion") == version
            ]
            progress = rollout_progress(live, version, executions)
            if progress.failure:
                raise RolloutFailed(
                    f"{_describe(live, version)} failed to roll out: {progress.failure}. The "
                    "update already replaced the previous version's executions; fix the job and "
                    "run `pulumi up` again (jobs that wait for this one were not updated)"
                )
            now = time.monotonic()
            if not progress.placed:
                settled_since = None
            elif settled_since is None or progress.picture != seen:
                # Placed now, or changed (a new execution, a bid answered): the settle time
                # starts again.
                settled_since = now
            seen = progress.picture
            if settled_since is not None and now - settled_since >= settle:
                return live
            if now >= deadline:
                raise RolloutTimeout(
                    f"{_describe(live, version)} did not settle on its nodes within {timeout:g}s "
                    f"({progress.summary}); it keeps rolling out: look with "
                    f"`bacalhau job describe {job_id}`, then run `pulumi up` again"
                )
            time.sleep(max(min(self.poll_interval, deadline - now), 0.0))
            live = _live(client, job_id)


@dataclass(frozen=True)
class RolloutProgress:
    # Every execution of the version is on its node, none failed, and the job runs.
    placed: bool
    # Why the rollout can never succeed, naming each failed node; empty while it may.
    failure: str
    # What is placed where, for a timeout message.
    summary: str
    # Each live execution and its state: the settle time restarts when this changes.
    picture: tuple[tuple[str, str], ...] = ()


def rollout_progress(
    job: Mapping[str, Any], version: Any, executions: list[dict[str, Any]]
) -> RolloutProgress:
    """Where the rollout of ``version`` stands, from the job and that version's executions."""
    state = job_state(job)
    if job.get("Version") != version:
        other = job.get("Version")
        return RolloutProgress(False, f"the job was updated to version {other} meanwhile", "")
    if state in TERMINAL_JOB_STATES:
        message = (job.get("State") or {}).get("Message") or "no message"
        return RolloutProgress(False, f"the job is {state}: {message}", "")
    states = [(execution, execution_state(execution)) for execution in executions]
    failed = [
        f"node {execution.get('NodeID')}: {_execution_message(execution, name)}"
        for execution, name in states
        if name in _EXECUTION_FAILED
    ]
    if failed:
        # A node retries a failed execution, so one reason may show several times.
        return RolloutProgress(False, "; ".join(dict.fromkeys(failed)), "")
    active = [(execution, name) for execution, name in states if name != "Cancelled"]
    if not active:
        return RolloutProgress(False, "", f"no executions yet, job {state}")
    placed = sum(1 for execution, name in active if _is_placed(execution, name))
    where = ", ".join(f"{execution.get('NodeID')} {name}" for execution, name in active)
    picture = tuple(sorted((str(execution.get("ID")), name) for execution, name in active))
    return RolloutProgress(
        placed=state == "Running" and placed == len(active),
        failure="",
        summary=f"{placed} of {len(active)} executions placed: {where}",
        picture=picture,
    )


def _is_placed(execution: Mapping[str, Any], state: str) -> bool:
    if state == "New":
        desired = (execution.get("DesiredState") or {}).get("StateType")
        return desired in (_DESIRED_RUNNING, "Running")
    return state in _EXECUTION_PLACED


@dataclass(frozen=True)
class BacalhauJobArgs:
    endpoint: pulumi.Input[str]
    # The fully rendered job, as PUT /api/v1/orchestrator/jobs takes it under "Job".
    spec: pulumi.Input[Mapping[str, Any]]
    # Written into the job's Namespace (the orchestrator reads it nowhere else).
    namespace: pulumi.Input[str] | None = None
    api_key: pulumi.Input[str] | None = None
    # Where a self-hosted orchestrator publishes its certificate; None trusts the system's CAs.
    ca_source: CaSource | None = None
    # Seconds to wait after a create or update until the new version has settled on its nodes
    # (daemon and service jobs); None returns as soon as the orchestrator accepted the spec.
    rollout_timeout: float | None = None
    # Seconds every execution of the new version must stay placed, none failing, to count as
    # rolled out (None: DEFAULT_ROLLOUT_SETTLE). Only used with rollout_timeout.
    rollout_settle: float | None = None


class BacalhauJob(pulumi.dynamic.Resource, module="bacalhau", name="Job"):
    """One Bacalhau job, submitted, updated, refreshed and stopped by Pulumi."""

    endpoint: pulumi.Output[str]
    spec: pulumi.Output[dict[str, Any]]
    namespace: pulumi.Output[str | None]
    rollout_timeout: pulumi.Output[float | None]
    rollout_settle: pulumi.Output[float | None]
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
            "rollout_timeout": args.rollout_timeout,
            "rollout_settle": args.rollout_settle,
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


def _job_of(spec: Mapping[str, Any], namespace: Any) -> dict[str, Any]:
    """The job as submitted: the spec, with the resource's namespace when it names none."""
    job = dict(spec)
    if namespace and not job.get("Namespace"):
        job["Namespace"] = namespace
    return job


def _type_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Why ``new`` cannot follow ``old``: the same Name in the same namespace with a new Type.

    Bacalhau v1.9.3 finds a submitted job by Namespace and Name, and an update copies only
    Priority, Count, Constraints, Meta, Labels and Tasks onto the stored job
    (BoltJobStore.updateJob, pkg/jobstore/boltdb/store.go); jobs are never deleted from the store,
    so not even a stop and a forced resubmission changes the Type of a Name.
    """
    same_job = job_name(old) == job_name(new) and job_namespace(old) == job_namespace(new)
    if not same_job or "Type" not in fixed_field_changes(old, new):
        return ""
    return (
        f"job '{job_name(new)}': Type: cannot change from {old.get('Type')!r} to "
        f"{new.get('Type')!r} under the same Name; Bacalhau keeps a job Name's Type for good "
        "(an update copies only Priority, Count, Constraints, Meta, Labels and Tasks): give the "
        "job a new Name"
    )


def _refuse_type_change(client: BacalhauClient, job: Mapping[str, Any]) -> None:
    """Refuse, before any write, to submit ``job`` under a Name held by a job of another Type:
    the orchestrator would keep the old Type and run the new tasks under it."""
    existing = client.get_job(job_name(job), namespace=job_namespace(job))
    if existing is None:
        return
    problem = _type_change(existing, job)
    if problem:
        raise RuntimeError(f"{problem} (the orchestrator holds it as job {existing.get('ID')})")


def _live(client: BacalhauClient, job_id: str) -> dict[str, Any]:
    live = client.get_job(job_id)
    if live is None:
        raise RuntimeError(f"job {job_id} vanished right after it was submitted")
    return live


def _public_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    return {key: props.get(key) for key in _PUBLIC_INPUTS}


def _status(job_id: str, live: Mapping[str, Any]) -> dict[str, Any]:
    return {"job_id": job_id, "version": live.get("Version"), "state": job_state(live)}


def _describe(job: Mapping[str, Any], version: Any) -> str:
    return f"job '{job_name(job)}' ({job.get('ID')}) version {version}"


def _execution_message(execution: Mapping[str, Any], state: str) -> str:
    """The node's reason: v1.9.3 puts it in ComputeState.Message (e.g. "failed to load entry
    module ..."), a run's own error in RunOutput.ErrorMsg."""
    compute = (execution.get("ComputeState") or {}).get("Message")
    run = (execution.get("RunOutput") or {}).get("ErrorMsg")
    return f"{state}: {compute or run or 'no message'}"


def _rollout_problems(news: Mapping[str, Any]) -> list[CheckFailure]:
    problems = []
    for key in ("rollout_timeout", "rollout_settle"):
        seconds = news.get(key)
        if seconds not in (None, UNKNOWN) and not _positive_number(seconds):
            problems.append(CheckFailure(key, f"{seconds!r} is not a number of seconds above 0"))
    timeout = news.get("rollout_timeout")
    settle = news.get("rollout_settle") or DEFAULT_ROLLOUT_SETTLE
    if not problems and _positive_number(timeout) and timeout <= float(settle):
        problems.append(
            CheckFailure(
                "rollout_timeout",
                f"{timeout!r} must be longer than rollout_settle ({settle:g}s), or no rollout "
                "could ever settle in time",
            )
        )
    return problems


def _positive_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _differs(old: Any, new: Any) -> bool:
    return bool(new == UNKNOWN or old != new)


def _changed(olds: Mapping[str, Any], news: Mapping[str, Any], key: str) -> bool:
    old, new = olds.get(key), news.get(key)
    if new == UNKNOWN:
        return True
    if isinstance(old, str) and isinstance(new, str):
        return old.rstrip("/") != new.rstrip("/")
    return (old or None) != (new or None)
