"""Pure rules about Bacalhau job specs: what makes two specs equal, and what makes one valid.

Equality follows what Bacalhau v1.9.3 itself treats as the same job, so a diff never shows a change
the orchestrator would refuse as "no changes detected", and a refresh never shows drift in a field
the orchestrator rewrites: fields it sets, its own ``bacalhau.org/`` metadata, key order, resource
units in any case or spacing (``ResourcesConfig.Normalize``, pkg/models/resource.go), empty maps
and lists (``Job.Normalize`` and the ``omitempty`` tags, pkg/models/job.go and task.go), the
default namespace and the Count of daemon and ops jobs (always 0 once stored).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

JobSpec = dict[str, Any]

# Set by the orchestrator on every write; a spec that carries them is still the same spec.
SERVER_SET_FIELDS = frozenset({"ID", "State", "Version", "Revision", "CreateTime", "ModifyTime"})
# The only fields an update copies onto the stored job (BoltJobStore.updateJob,
# pkg/jobstore/boltdb/store.go at v1.9.3); a change to any other field is silently dropped.
UPDATABLE_FIELDS = frozenset({"Priority", "Count", "Constraints", "Meta", "Labels", "Tasks"})
# models.MetaReservedPrefix: such keys are dropped from submissions and set by the orchestrator.
SYSTEM_META_PREFIX = "bacalhau.org/"
DEFAULT_NAMESPACE = "default"
JOB_TYPES = ("batch", "service", "daemon", "ops")
# Daemon and ops jobs run once on every matching node; Count above 1 fails Bacalhau's validation.
PER_NODE_JOB_TYPES = frozenset({"daemon", "ops"})
# Batch and service jobs without a Count run one copy (Job.UnmarshalJSON, pkg/models/job.go).
DEFAULT_COUNT = 1
# selection.Operator in the v1.9.3 API spec.
CONSTRAINT_OPERATORS = frozenset({"!", "=", "==", "in", "!=", "notin", "exists", "gt", "lt"})
# ResourcesConfig.Normalize lower-cases these and strips spaces and newlines before storing or
# comparing, so "500M" is stored and scheduled as "500m" (half a core), "1 GB" as "1gb".
_RESOURCE_FIELDS = ("CPU", "Memory", "Disk", "GPU")
# models.ValidateEnvVars (pkg/models/env_var.go): names that Bacalhau refuses at submission.
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_RESERVED_ENV_PREFIX = "BACALHAU_"
# Pulumi's placeholder for values not known during preview.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


class JobSpecError(ValueError):
    """A job spec Bacalhau would reject; the message names the job and every bad field."""


def job_name(spec: Mapping[str, Any]) -> str:
    name = spec.get("Name")
    return name if isinstance(name, str) else "<unnamed>"


def job_namespace(spec: Mapping[str, Any]) -> str:
    """The namespace the orchestrator files the job under: its own ``Namespace``, else default."""
    namespace = spec.get("Namespace")
    return namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE


def integral_floats_to_ints(value: Any) -> Any:
    """``value`` with every float that holds a whole number turned into an int, at any depth.

    The Pulumi engine hands a dynamic provider its inputs as a protobuf Struct, where every number
    is a double: a declared ``Count: 1`` arrives as ``1.0``. Go's decoder refuses ``1.0`` for an
    integer field (``Count *int`` in Job.UnmarshalJSON, pkg/models/job.go), and decodes ``1`` and
    ``1.0`` alike into an ``interface{}`` (engine parameters), so turning them back is lossless.
    """
    if isinstance(value, Mapping):
        return {key: integral_floats_to_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integral_floats_to_ints(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def normalize(spec: Mapping[str, Any]) -> JobSpec:
    """The parts of a spec that describe intent, in the canonical form the orchestrator compares
    (Job.CompareWith after Job.Normalize, pkg/models/job.go)."""
    job = {k: copy.deepcopy(v) for k, v in spec.items() if k not in SERVER_SET_FIELDS}
    job["Namespace"] = job_namespace(job)
    if job.get("Type") in PER_NODE_JOB_TYPES:
        # Job.Normalize stores 0 whatever was sent: the job runs on every matching node.
        job.pop("Count", None)
    elif job.get("Type") in JOB_TYPES and job.get("Count") is None:
        job["Count"] = DEFAULT_COUNT
    _drop_system_meta(job)
    for task in job.get("Tasks") or []:
        if isinstance(task, dict):
            _drop_system_meta(task)
            _normalize_resources(task)
    # A JSON round trip with sorted keys makes key order and int-vs-float irrelevant at any depth.
    normalized: JobSpec = json.loads(json.dumps(_without_empty(job), sort_keys=True))
    return normalized


def same_spec(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    return normalize(left) == normalize(right)


def fixed_field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The top-level fields that differ between two specs but that an update cannot change
    (anything outside ``UPDATABLE_FIELDS``, e.g. Name, Namespace, Type), sorted."""
    left, right = normalize(old), normalize(new)
    return sorted(
        key
        for key in set(left) | set(right)
        if key not in UPDATABLE_FIELDS and left.get(key) != right.get(key)
    )


def contains_unknown(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return bool(value == UNKNOWN)


def project(live: Any, declared: Any) -> Any:
    """``live`` cut down to the shape of ``declared``: the orchestrator's value for every field the
    spec declares, ignoring defaults it fills in. A refresh compares this with the declared spec,
    so a change made out of band shows up while server-side defaults never do."""
    if isinstance(declared, Mapping) and isinstance(live, Mapping):
        return {k: project(live[k], v) for k, v in declared.items() if k in live}
    if isinstance(declared, list) and isinstance(live, list) and len(declared) == len(live):
        return [project(lv, dv) for lv, dv in zip(live, declared, strict=True)]
    return live


def validate(spec: Mapping[str, Any]) -> list[str]:
    """Every reason Bacalhau would refuse ``spec``, each naming the job and the field; empty if
    none. Fields still unknown during a preview are skipped."""
    name = job_name(spec)
    return [f"job '{name}': {problem}" for problem in _problems(spec)]


def _problems(spec: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if not isinstance(spec.get("Name"), str) or not spec["Name"]:
        problems.append("Name: required, a non-empty string")
    job_type = spec.get("Type")
    if job_type != UNKNOWN and job_type not in JOB_TYPES:
        problems.append(f"Type: {job_type!r} is not one of {', '.join(JOB_TYPES)}")
    count = spec.get("Count")
    if count is not None and count != UNKNOWN:
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            problems.append(f"Count: {count!r} is not a non-negative integer")
        elif job_type in PER_NODE_JOB_TYPES and count > 1:
            problems.append(f"Count: {count} is not allowed for {job_type} jobs (at most 1)")
    tasks = spec.get("Tasks")
    if not isinstance(tasks, list) or len(tasks) != 1:
        found = len(tasks) if isinstance(tasks, list) else 0
        problems.append(f"Tasks: exactly one task is required, found {found}")
    else:
        problems.extend(_task_problems(tasks[0]))
    problems.extend(_constraint_problems(spec.get("Constraints")))
    return problems


def _task_problems(task: Any) -> list[str]:
    if not isinstance(task, Mapping):
        return ["Tasks[0]: must be a mapping"]
    problems = []
    if not isinstance(task.get("Name"), str) or not task["Name"]:
        problems.append("Tasks[0].Name: required, a non-empty string")
    engine = task.get("Engine")
    if not isinstance(engine, Mapping) or not engine.get("Type"):
        problems.append("Tasks[0].Engine.Type: required")
    problems.extend(_env_problems(task.get("Env")))
    return problems


def _env_problems(env: Any) -> list[str]:
    """models.ValidateEnvVars (pkg/models/env_var.go): the orchestrator answers 400 for these."""
    if env is None or env == UNKNOWN:
        return []
    if not isinstance(env, Mapping):
        return ["Tasks[0].Env: must be a mapping of names to strings"]
    problems = []
    for key, value in env.items():
        field = f"Tasks[0].Env.{key}"
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            problems.append(
                f"{field}: the name must be upper case letters, digits and underscores, "
                "starting with a letter"
            )
        elif key.startswith(_RESERVED_ENV_PREFIX):
            problems.append(f"{field}: names starting with {_RESERVED_ENV_PREFIX} are reserved")
        if value == "":
            problems.append(f"{field}: empty value; Bacalhau refuses empty values, leave it out")
        elif value != UNKNOWN and not isinstance(value, str):
            problems.append(f"{field}: {value!r} is not a string")
    return problems


def _constraint_problems(constraints: Any) -> list[str]:
    if constraints is None or constraints == UNKNOWN:
        return []
    if not isinstance(constraints, list):
        return ["Constraints: must be a list"]
    problems = []
    for index, constraint in enumerate(constraints):
        field = f"Constraints[{index}]"
        if not isinstance(constraint, Mapping):
            problems.append(f"{field}: must be a mapping")
            continue
        if not constraint.get("Key"):
            problems.append(f"{field}.Key: required")
        operator = constraint.get("Operator")
        if operator != UNKNOWN and operator not in CONSTRAINT_OPERATORS:
            allowed = " ".join(sorted(CONSTRAINT_OPERATORS))
            problems.append(f"{field}.Operator: {operator!r} is not one of {allowed}")
    return problems


def _drop_system_meta(holder: dict[str, Any]) -> None:
    meta = holder.get("Meta")
    if isinstance(meta, dict):
        holder["Meta"] = {k: v for k, v in meta.items() if not k.startswith(SYSTEM_META_PREFIX)}


def _normalize_resources(task: dict[str, Any]) -> None:
    resources = task.get("Resources")
    if not isinstance(resources, dict):
        return
    for field in _RESOURCE_FIELDS:
        value = resources.get(field)
        if isinstance(value, str):
            resources[field] = value.lower().replace(" ", "").replace("\n", "")


def _without_empty(value: Any) -> Any:
    """Struct fields that hold their Go zero value (None, 0, "", false, or a map or list that is
    empty once cleaned) are left out: Go decodes an absent field and a zero one alike, and the
    API omits them on the way back (``omitempty`` on a task's Env, Meta, InputSources,
    Timeouts.ExecutionTimeout..., pkg/models/task.go and job.go; Job.Normalize makes nil and
    empty maps and lists the same). The contents of map-typed fields (Labels, Meta, Env,
    engine and source Params) are data, kept as they are."""
    if isinstance(value, Mapping):
        cleaned = {
            key: item if key in _MAP_FIELDS else _without_empty(item) for key, item in value.items()
        }
        return {key: item for key, item in cleaned.items() if not _is_zero(item)}
    if isinstance(value, list):
        return [_without_empty(item) for item in value]
    return value


# Fields whose Go type is a map: their entries are kept even when empty or zero.
_MAP_FIELDS = frozenset({"Labels", "Meta", "Env", "Params"})


def _is_zero(value: Any) -> bool:
    if isinstance(value, bool):
        return value is False
    return value is None or value in (0, "") or value == {} or value == []


def without_missing_env_references(spec: Mapping[str, Any], available: Collection[str]) -> JobSpec:
    """The spec without task Env entries ``NAME: env:VAR`` whose VAR the nodes do not define.

    Job files reference every credential a backend might supply; each backend's nodes define
    only the ones it uses (MinIO keys locally, none on AWS where the instance role answers). An
    unresolvable reference would fail the job, and an empty credential would stop the AWS SDKs
    from falling back to the instance role, so the entry is dropped instead.
    """
    job: JobSpec = copy.deepcopy(dict(spec))
    for task in job.get("Tasks") or []:
        env = task.get("Env") if isinstance(task, dict) else None
        if isinstance(env, dict):
            task["Env"] = {
                key: value
                for key, value in env.items()
                if not (isinstance(value, str) and value.startswith("env:"))
                or value.removeprefix("env:") in available
            }
    return job


def without_empty_env_values(spec: Mapping[str, Any]) -> JobSpec:
    """The spec without task Env entries whose value is the empty string.

    Bacalhau v1.9.3 refuses a job with any empty Env value ("environment variable 'X' cannot
    have empty value", EnvVarValue.Validate in pkg/models/env_var.go, a 400 at submission). Job
    files fill some variables per backend (``OPENSEARCH_AUTH`` is empty locally), so an empty one
    means "not set" and is left out; the job's programs must treat an absent variable as empty.
    """
    job: JobSpec = copy.deepcopy(dict(spec))
    for task in job.get("Tasks") or []:
        env = task.get("Env") if isinstance(task, dict) else None
        if isinstance(env, dict):
            task["Env"] = {key: value for key, value in env.items() if value != ""}
    return job
