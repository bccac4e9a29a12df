"""Pure rules about Bacalhau job specs: what makes two specs equal, and what makes one valid.

Equality is the heart of a diff without perpetual changes (the long-standing complaint about
Terraform's ``nomad_job``): fields the orchestrator sets, its own ``bacalhau.org*`` metadata, key
order and the spelling of memory units never count as a change.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection, Mapping
from typing import Any

JobSpec = dict[str, Any]

# Set by the orchestrator on every write; a spec that carries them is still the same spec.
SERVER_SET_FIELDS = frozenset({"ID", "State", "Version", "Revision", "CreateTime", "ModifyTime"})
SYSTEM_META_PREFIX = "bacalhau.org"
JOB_TYPES = ("batch", "service", "daemon", "ops")
# Daemon and ops jobs run once on every matching node; Count above 1 fails Bacalhau's validation.
PER_NODE_JOB_TYPES = frozenset({"daemon", "ops"})
# selection.Operator in the v1.9.3 API spec.
CONSTRAINT_OPERATORS = frozenset({"!", "=", "==", "in", "!=", "notin", "exists", "gt", "lt"})
# Memory and Disk are parsed by go-humanize, which ignores case ("1Gb" == "1GB"). CPU is not:
# in Kubernetes notation "500m" (millicores) and "500M" (mega) are different amounts.
_CASE_FOLDED_RESOURCES = ("Memory", "Disk")
# Pulumi's placeholder for values not known during preview.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


class JobSpecError(ValueError):
    """A job spec Bacalhau would reject; the message names the job and every bad field."""


def job_name(spec: Mapping[str, Any]) -> str:
    name = spec.get("Name")
    return name if isinstance(name, str) else "<unnamed>"


def normalize(spec: Mapping[str, Any]) -> JobSpec:
    """The parts of a spec that describe intent, in a canonical form fit for comparison."""
    job = {k: copy.deepcopy(v) for k, v in spec.items() if k not in SERVER_SET_FIELDS}
    _drop_system_meta(job)
    for task in job.get("Tasks") or []:
        if isinstance(task, dict):
            _drop_system_meta(task)
            _fold_resource_units(task)
    # A JSON round trip with sorted keys makes key order irrelevant at every depth.
    normalized: JobSpec = json.loads(json.dumps(job, sort_keys=True))
    return normalized


def same_spec(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    return normalize(left) == normalize(right)


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
        kept = {k: v for k, v in meta.items() if not k.startswith(SYSTEM_META_PREFIX)}
        if kept:
            holder["Meta"] = kept
        else:
            # No Meta and an empty Meta mean the same to Bacalhau.
            del holder["Meta"]


def _fold_resource_units(task: dict[str, Any]) -> None:
    resources = task.get("Resources")
    if not isinstance(resources, dict):
        return
    for field in _CASE_FOLDED_RESOURCES:
        value = resources.get(field)
        if isinstance(value, str):
            resources[field] = value.replace(" ", "").upper()


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
