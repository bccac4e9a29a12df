"""Whether a region's jobs fit on one of its compute nodes, by Bacalhau v1.9.3's own arithmetic.

A compute node offers a share of what it detects (``Compute.AllocatedCapacity``, 80% of CPU,
memory and disk by default: pkg/config/defaults.go) and runs an execution only while the sum of
its running executions' ``Resources`` stays within that (pkg/compute/capacity/trackers.go
``AddIfHasCapacity``); anything beyond waits in the node's queue (pkg/compute/executor_buffer.go)
and a query behind long-running daemons waits forever. So on every node the daemons, the
compactor (a service job that may land on any node of its region) and the largest query must fit
together. A job without ``Resources`` gets 500m CPU and 512Mb memory (``JobDefaults`` in
pkg/config/defaults.go).

Everything here is pure: it reads the job files and answers numbers or problems.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.paths import JOBS_DIR

MIB = 2**20
GIB = 2**30

# Compute.AllocatedCapacity CPU and Memory default to "80%" (pkg/config/defaults.go), applied by
# types.ResourceScaler.ToResource (pkg/config/types/resource.go) to what the node detects.
ALLOCATED_PERCENT = 80

# JobDefaults.{Batch,Ops,Daemon,Service}.Task.Resources in pkg/config/defaults.go: "500m" and
# "512Mb", which go-humanize reads as 512 * 10^6 bytes.
DEFAULT_CPU = "500m"
DEFAULT_MEMORY = "512Mb"

# Linux reports less memory than an instance type's nominal GiB (firmware and kernel reserve
# some; Bacalhau reads MemTotal through pbnjay/memory). 90% is an assumed floor, not a
# measurement: it keeps the check on the safe side.
VISIBLE_MEMORY_FRACTION = 0.9

# What Logstash needs beside its heap and direct-memory cap: metaspace (JRuby and plugins), the
# JIT code cache (240 MiB reserved by default), thread stacks and GC structures. An allowance,
# not a measurement; Logstash's docs list these as off-heap ("Setting the off-heap size",
# docs/static/config-details.asciidoc at v8.19.20).
JVM_NATIVE_ALLOWANCE = 512 * MIB

_MILLI_CPU = re.compile(r"[+-]?\d+m")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([e][+-]?\d+)?")
_BYTES = re.compile(r"([\d.,]*)(.*)")
_JVM_SIZE = re.compile(r"(\d+)([kmgt]?)", re.IGNORECASE)
# go-humanize v1.0.1 bytes.go, bytesSizeTable (keys are lower case; the suffix is lowered).
_BYTE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "ki": 2**10, "kib": 2**10,
    "m": 10**6, "mb": 10**6, "mi": 2**20, "mib": 2**20,
    "g": 10**9, "gb": 10**9, "gi": 2**30, "gib": 2**30,
    "t": 10**12, "tb": 10**12, "ti": 2**40, "tib": 2**40,
    "p": 10**15, "pb": 10**15, "pi": 2**50, "pib": 2**50,
    "e": 10**18, "eb": 10**18, "ei": 2**60, "eib": 2**60,
}  # fmt: skip
_JVM_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


class CapacityError(ValueError):
    """A resource string Bacalhau would refuse, or a job file without readable Resources."""


@dataclass(frozen=True)
class Resources:
    """CPU in millicores and memory in bytes, as Bacalhau compares them."""

    cpu_millicores: int
    memory_bytes: int

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_millicores + other.cpu_millicores, self.memory_bytes + other.memory_bytes
        )

    def fits_in(self, other: Resources) -> bool:
        return (
            self.cpu_millicores <= other.cpu_millicores and self.memory_bytes <= other.memory_bytes
        )

    def describe(self) -> str:
        return f"{self.cpu_millicores / 1000:g} CPU, {self.memory_bytes / 10**9:.2f} GB"


NOTHING = Resources(0, 0)


def _normalize(text: str) -> str:
    # ResourcesConfig.Normalize (pkg/models/resource.go): lower case, spaces and newlines removed.
    return text.lower().replace(" ", "").replace("\n", "")


def parse_cpu(text: str) -> int:
    """Millicores of a job's ``CPU`` string, as k8sresource v1.2.0 ``NewCPUFromString`` reads it
    after Bacalhau's normalization: ``<int>m`` or a decimal number of cores, truncated."""
    value = _normalize(text)
    if _MILLI_CPU.fullmatch(value):
        millicores = int(value[:-1])
    elif _DECIMAL.fullmatch(value):
        millicores = int(float(value) * 1000)
    else:
        raise CapacityError(f"CPU {text!r}: expected cores like '1', '0.5' or millicores '500m'")
    if millicores < 0:
        raise CapacityError(f"CPU {text!r}: must not be negative")
    return millicores


def parse_bytes(text: str) -> int:
    """Bytes of a ``Memory`` or ``Disk`` string, as go-humanize v1.0.1 ``ParseBytes`` reads it
    after Bacalhau's normalization: ``1GB`` is 10^9 bytes, ``1GiB`` is 2^30."""
    value = _normalize(text)
    match = _BYTES.fullmatch(value)
    number, unit = (match.group(1), match.group(2)) if match else ("", value)
    try:
        amount = float(number.replace(",", ""))
    except ValueError:
        raise CapacityError(f"size {text!r}: expected a number and a unit, like '1GB'") from None
    if unit not in _BYTE_UNITS:
        raise CapacityError(f"size {text!r}: unknown unit {unit!r}; use B, KB, MB, GB, MiB, GiB")
    return int(amount * _BYTE_UNITS[unit])


def parse_jvm_size(text: str) -> int:
    """Bytes of a JVM size such as the ``1g`` in ``-Xmx1g`` (binary units, k/m/g/t)."""
    match = _JVM_SIZE.fullmatch(text)
    if match is None:
        raise CapacityError(f"JVM size {text!r}: expected digits and k, m, g or t, like '1g'")
    return int(match.group(1)) * _JVM_UNITS[match.group(2).lower()]


def job_resources(spec: Mapping[str, Any], *, source: str = "job") -> Resources:
    """What one execution of ``spec`` reserves on a node, defaults filled in as v1.9.3 does."""
    tasks = spec.get("Tasks")
    if not isinstance(tasks, list) or not tasks or not isinstance(tasks[0], Mapping):
        raise CapacityError(f"{source}: Tasks[0] is missing")
    declared = tasks[0].get("Resources") or {}
    if not isinstance(declared, Mapping):
        raise CapacityError(f"{source}: Tasks[0].Resources must be a mapping")
    cpu = declared.get("CPU") or DEFAULT_CPU
    memory = declared.get("Memory") or DEFAULT_MEMORY
    if not isinstance(cpu, str | int | float) or not isinstance(memory, str | int | float):
        raise CapacityError(f"{source}: Tasks[0].Resources CPU and Memory must be scalars")
    try:
        return Resources(parse_cpu(str(cpu)), parse_bytes(str(memory)))
    except CapacityError as error:
        raise CapacityError(f"{source}: Tasks[0].Resources: {error}") from None


def allocated(vcpus: int, memory_bytes: int) -> Resources:
    """What a node with ``vcpus`` and ``memory_bytes`` detected offers jobs by default."""
    return Resources(
        vcpus * 1000 * ALLOCATED_PERCENT // 100,
        int(memory_bytes * ALLOCATED_PERCENT / 100),
    )


@dataclass(frozen=True)
class InstanceType:
    vcpus: int
    memory_gib: int

    @property
    def offered(self) -> Resources:
        """What Bacalhau offers jobs on this type (80% of vCPUs and of the memory Linux sees)."""
        visible = int(self.memory_gib * GIB * VISIBLE_MEMORY_FRACTION)
        return allocated(self.vcpus, visible)


# x86_64 types (the node AMI is x86_64), vCPUs and memory from the "Hardware specifications" tables
# of the EC2 instance types guide (docs.aws.amazon.com/ec2/latest/instancetypes/gp.html, co.html,
# mo.html). Types too small for the jobs are listed too, so the error can say why.
INSTANCE_TYPES: Mapping[str, InstanceType] = {
    **{
        f"{family}.{size}": InstanceType(vcpus, memory)
        for family in ("t3", "t3a")
        for size, vcpus, memory in (
            ("medium", 2, 4), ("large", 2, 8), ("xlarge", 4, 16), ("2xlarge", 8, 32)
        )
    },
    **{
        f"{family}.{size}": InstanceType(vcpus, memory)
        for family in ("m5", "m5a", "m6i", "m6a", "m7i", "m7a")
        for size, vcpus, memory in (
            ("large", 2, 8), ("xlarge", 4, 16), ("2xlarge", 8, 32), ("4xlarge", 16, 64)
        )
    },
    **{
        f"{family}.{size}": InstanceType(vcpus, memory)
        for family in ("c5", "c5a", "c6i", "c6a", "c7i", "c7a")
        for size, vcpus, memory in (
            ("large", 2, 4), ("xlarge", 4, 8), ("2xlarge", 8, 16), ("4xlarge", 16, 32)
        )
    },
    **{
        f"{family}.{size}": InstanceType(vcpus, memory)
        for family in ("r5", "r6i", "r7i")
        for size, vcpus, memory in (("large", 2, 16), ("xlarge", 4, 32), ("2xlarge", 8, 64))
    },
}  # fmt: skip


@dataclass(frozen=True)
class NodeDemand:
    """What one node must hold at once: every daemon, the region's service jobs (they may all
    land on this node) and the largest on-demand query."""

    daemons: Mapping[str, Resources]
    services: Mapping[str, Resources]
    queries: Mapping[str, Resources]

    @property
    def largest_query(self) -> tuple[str, Resources]:
        if not self.queries:
            return "none", NOTHING
        return max(
            self.queries.items(), key=lambda item: (item[1].cpu_millicores, item[1].memory_bytes)
        )

    @property
    def total(self) -> Resources:
        """Long-running jobs plus room for any one query: the most CPU and the most memory any
        query asks for (each may come from a different query, which errs on the safe side)."""
        cpu = max((r.cpu_millicores for r in self.queries.values()), default=0)
        memory = max((r.memory_bytes for r in self.queries.values()), default=0)
        total = Resources(cpu, memory)
        for resources in (*self.daemons.values(), *self.services.values()):
            total = total + resources
        return total


def _load(path: Path) -> Mapping[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise CapacityError(f"{path}: cannot read the job ({error})") from None
    if not isinstance(document, Mapping):
        raise CapacityError(f"{path}: expected a job mapping")
    return document


def node_demand(*, generator_enabled: bool, jobs_dir: Path = JOBS_DIR) -> NodeDemand:
    """The demand of the stack's job files: ``logstash`` and (when enabled) ``generate-logs``
    run on every node, ``compactor`` once per region, and any file under ``queries/`` may run
    beside them (ops queries on every node, batch queries on one)."""
    daemons = {"logstash": jobs_dir / "logstash.yaml"}
    if generator_enabled:
        daemons["generate-logs"] = jobs_dir / "generate-logs.yaml"
    services = {"compactor": jobs_dir / "compactor.yaml"}
    queries = {
        str(path.relative_to(jobs_dir / "queries").with_suffix("")): path
        for path in sorted((jobs_dir / "queries").glob("*/*.yaml"))
    }

    def resources(paths: Mapping[str, Path]) -> dict[str, Resources]:
        return {name: job_resources(_load(path), source=str(path)) for name, path in paths.items()}

    return NodeDemand(resources(daemons), resources(services), resources(queries))


def instance_type_problems(instance_type: str, demand: NodeDemand) -> list[str]:
    """Why ``instance_type`` cannot hold ``demand``, or nothing if it can."""
    known = INSTANCE_TYPES.get(instance_type)
    if known is None:
        return [
            f"'{instance_type}' is not an instance type whose size this project knows; "
            f"use one of {', '.join(sorted(INSTANCE_TYPES))} (or add it to infra/capacity.py)"
        ]
    offered, needed = known.offered, demand.total
    if needed.fits_in(offered):
        return []
    query, _ = demand.largest_query
    jobs = ", ".join([*demand.daemons, *demand.services, f"the largest query ({query})"])
    return [
        f"'{instance_type}' is too small: Bacalhau offers {offered.describe()} of it to jobs "
        f"(80% of {known.vcpus} vCPUs and of ~{VISIBLE_MEMORY_FRACTION:.0%} of "
        f"{known.memory_gib} GiB), but {jobs} need {needed.describe()} together; "
        f"pick a larger type, e.g. {smallest_fitting(demand)}"
    ]


def smallest_fitting(demand: NodeDemand) -> str:
    """The known instance type with the fewest vCPUs, then least memory, that holds ``demand``."""
    fitting = [
        (known.vcpus, known.memory_gib, name)
        for name, known in INSTANCE_TYPES.items()
        if demand.total.fits_in(known.offered)
    ]
    return min(fitting)[2] if fitting else "none of the known types"


def node_allocation(demand: NodeDemand) -> dict[str, str]:
    """``Compute.AllocatedCapacity`` for a node that must hold exactly ``demand``: absolute
    values (pkg/config/types/resource.go accepts Kubernetes CPU strings and go-humanize sizes),
    so scheduling does not depend on the machine a local node runs on."""
    total = demand.total
    return {
        "CPU": f"{total.cpu_millicores}m",
        "Memory": f"{math.ceil(total.memory_bytes / MIB)}MiB",
        # Disk and GPU stay at Bacalhau's defaults; set here so the scaler never sees "".
        "Disk": f"{ALLOCATED_PERCENT}%",
        "GPU": "100%",
    }


@dataclass(frozen=True)
class JvmMemory:
    heap_min: int
    heap_max: int
    max_direct: int | None


def jvm_memory(java_opts: str) -> JvmMemory:
    """Heap and direct-memory limits in ``LS_JAVA_OPTS`` (the last of each flag wins, as in the
    JVM); a missing -Xms/-Xmx is an error, since the image's jvm.options would then apply."""
    values: dict[str, int] = {}
    for flag in java_opts.split():
        for prefix, key in (("-Xms", "min"), ("-Xmx", "max"), ("-XX:MaxDirectMemorySize=", "dm")):
            if flag.startswith(prefix):
                values[key] = parse_jvm_size(flag.removeprefix(prefix))
    if "min" not in values or "max" not in values:
        raise CapacityError(f"LS_JAVA_OPTS {java_opts!r}: set both -Xms and -Xmx")
    return JvmMemory(values["min"], values["max"], values.get("dm"))


def logstash_memory_problems(spec: Mapping[str, Any]) -> list[str]:
    """Whether the Logstash job's heap leaves room for off-heap memory inside its hard limit.

    Bacalhau passes ``Memory`` to Docker as the container's limit (HostConfig.Resources.Memory in
    pkg/executor/docker/executor.go), so heap + direct memory + the JVM's own needs must stay
    below it or the kernel kills Logstash. Direct memory defaults to the heap size, hence a cap.
    """
    limit = job_resources(spec, source="logstash").memory_bytes
    env = spec["Tasks"][0].get("Env") or {}
    opts = env.get("LS_JAVA_OPTS")
    if not isinstance(opts, str):
        return ["Tasks[0].Env.LS_JAVA_OPTS: required, with -Xms, -Xmx and -XX:MaxDirectMemorySize"]
    jvm = jvm_memory(opts)
    problems = []
    if jvm.heap_min != jvm.heap_max:
        problems.append("LS_JAVA_OPTS: -Xms must equal -Xmx (a resizing heap costs CPU)")
    if jvm.max_direct is None:
        problems.append("LS_JAVA_OPTS: set -XX:MaxDirectMemorySize (it defaults to the heap size)")
        return problems
    needed = jvm.heap_max + jvm.max_direct + JVM_NATIVE_ALLOWANCE
    if needed > limit:
        problems.append(
            f"Memory {limit} bytes is below heap {jvm.heap_max} + direct {jvm.max_direct} + "
            f"{JVM_NATIVE_ALLOWANCE} for the JVM itself = {needed} bytes"
        )
    return problems
