"""Node capacity and job Resources, by Bacalhau v1.9.3's arithmetic (pure, no Pulumi)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import capacity
from infra.capacity import GIB, MIB, CapacityError, Resources
from infra.paths import JOBS_DIR

STACK_JOBS = ("logstash", "compactor", "generate-logs")


def job(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((JOBS_DIR / f"{name}.yaml").read_text())
    return document


@pytest.mark.parametrize(
    ("text", "millicores"),
    [
        ("500m", 500),
        ("1", 1000),
        ("0.5", 500),
        ("2.25", 2250),
        # Bacalhau lower-cases resource strings before parsing (ResourcesConfig.Normalize).
        ("500M", 500),
        (" 1 ", 1000),
        # k8sresource truncates f*1000 to an int: 1.001*1000 is 1000.9999999999999 in binary.
        ("1.001", 1000),
    ],
)
def test_cpu_strings_parse_like_bacalhau(text: str, millicores: int) -> None:
    """pkg/models/resource.go ToResources -> k8sresource v1.2.0 cpucalc.go cpuIntFromString."""
    assert capacity.parse_cpu(text) == millicores


@pytest.mark.parametrize("text", ["one", "1 core", "500mc", "-1", "", "1_000"])
def test_bad_cpu_strings_are_refused(text: str) -> None:
    with pytest.raises(CapacityError, match="CPU"):
        capacity.parse_cpu(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        # go-humanize v1.0.1 bytesSizeTable: "gb" is 10^9, "gib" 2^30, "mb" 10^6.
        ("1GB", 10**9),
        ("1gb", 10**9),
        ("1GiB", GIB),
        ("512Mb", 512 * 10**6),
        ("2560MiB", 2560 * MIB),
        ("1.5GB", 1_500_000_000),
        ("1,000kb", 10**6),
        ("1G", 10**9),
        ("42", 42),
    ],
)
def test_sizes_parse_like_go_humanize(text: str, size: int) -> None:
    """pkg/models/resource.go ToResources -> go-humanize v1.0.1 bytes.go ParseBytes."""
    assert capacity.parse_bytes(text) == size


@pytest.mark.parametrize("text", ["GB", "1 gigabyte", "1GBB", "x1GB"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(CapacityError, match="size"):
        capacity.parse_bytes(text)


def test_a_job_without_resources_gets_bacalhaus_defaults() -> None:
    """pkg/config/defaults.go JobDefaults: 500m CPU and 512Mb for every job type, applied by
    pkg/orchestrator/transformer/job.go to each empty field."""
    spec = {"Tasks": [{"Name": "t"}]}
    assert capacity.job_resources(spec) == Resources(500, 512_000_000)
    spec = {"Tasks": [{"Name": "t", "Resources": {"Memory": "2GB"}}]}
    assert capacity.job_resources(spec) == Resources(500, 2 * 10**9)


@pytest.mark.parametrize("name", STACK_JOBS)
def test_every_stack_job_declares_its_resources(name: str) -> None:
    resources = job(name)["Tasks"][0].get("Resources") or {}
    assert {"CPU", "Memory"} <= set(resources), f"jobs/{name}.yaml relies on Bacalhau's defaults"


def test_node_offers_eighty_percent_of_what_it_detects() -> None:
    """pkg/config/defaults.go Compute.AllocatedCapacity CPU/Memory "80%", applied by
    pkg/config/types/resource.go ResourceScaler.ToResource to pkg/compute/capacity/system
    GetTotalCapacity (runtime.NumCPU, total memory)."""
    assert capacity.allocated(2, 4 * GIB) == Resources(1600, int(4 * GIB * 0.8))
    assert capacity.allocated(4, 10**9) == Resources(3200, 800_000_000)


@pytest.mark.parametrize("name", sorted(capacity.INSTANCE_TYPES))
def test_capacity_per_instance_type(name: str) -> None:
    """Each known type: 80% of its vCPUs and of 90% of its GiB (the assumed MemTotal floor)."""
    known = capacity.INSTANCE_TYPES[name]
    offered = known.offered
    assert offered.cpu_millicores == known.vcpus * 800
    visible = known.memory_gib * GIB * 0.9
    # Two truncations to whole bytes: the visible memory, then the 80%.
    assert abs(offered.memory_bytes - visible * 0.8) <= 2


def demand(generator: bool = False) -> capacity.NodeDemand:
    return capacity.node_demand(generator_enabled=generator)


def test_demand_adds_daemons_compactor_and_the_largest_query() -> None:
    total = demand().total
    logstash = capacity.job_resources(job("logstash"))
    compactor = capacity.job_resources(job("compactor"))
    queries = demand().queries.values()
    assert queries, "the query specs in jobs/queries/ are part of the arithmetic"
    assert total.cpu_millicores == (
        logstash.cpu_millicores + compactor.cpu_millicores + max(q.cpu_millicores for q in queries)
    )
    assert total.memory_bytes == (
        logstash.memory_bytes + compactor.memory_bytes + max(q.memory_bytes for q in queries)
    )
    with_generator = demand(generator=True).total
    generator = capacity.job_resources(job("generate-logs"))
    assert with_generator == total + generator


@pytest.mark.parametrize("name", sorted(capacity.INSTANCE_TYPES))
def test_instance_type_verdict_matches_the_arithmetic(name: str) -> None:
    known, needed = capacity.INSTANCE_TYPES[name], demand().total
    fits = needed.cpu_millicores <= known.vcpus * 800 and needed.memory_bytes <= int(
        known.memory_gib * GIB * 0.9 * 0.8
    )
    problems = capacity.instance_type_problems(name, demand())
    assert (problems == []) is fits, problems


def test_two_vcpu_nodes_leave_no_room_for_a_query() -> None:
    """The issue's case: on t3.medium the daemons fill 1.6 CPU, so queries wait forever in the
    node's queue (pkg/compute/executor_buffer.go deque: runs only what AddIfHasCapacity
    admits)."""
    (problem,) = capacity.instance_type_problems("t3.medium", demand())
    assert "'t3.medium' is too small" in problem
    assert "1.6 CPU" in problem
    assert "pick a larger type, e.g." in problem
    assert capacity.instance_type_problems("m6i.xlarge", demand()) == []


def test_unknown_instance_type_is_named() -> None:
    (problem,) = capacity.instance_type_problems("x9.huge", demand())
    assert "'x9.huge' is not an instance type whose size this project knows" in problem


def test_node_allocation_holds_exactly_the_demand() -> None:
    total = demand(generator=True).total
    allocation = capacity.node_allocation(demand(generator=True))
    assert capacity.parse_cpu(allocation["CPU"]) == total.cpu_millicores
    memory = capacity.parse_bytes(allocation["Memory"])
    assert total.memory_bytes <= memory < total.memory_bytes + MIB
    # Every field is set: pkg/config/types/resource.go ToResource fails to parse an empty one.
    assert allocation["Disk"] == "80%"
    assert allocation["GPU"] == "100%"


def test_logstash_heap_leaves_room_for_off_heap_memory() -> None:
    assert capacity.logstash_memory_problems(job("logstash")) == []
    jvm = capacity.jvm_memory(job("logstash")["Tasks"][0]["Env"]["LS_JAVA_OPTS"])
    limit = capacity.job_resources(job("logstash")).memory_bytes
    assert jvm.heap_min == jvm.heap_max
    assert jvm.max_direct is not None
    assert jvm.heap_max + jvm.max_direct + capacity.JVM_NATIVE_ALLOWANCE <= limit


def test_the_old_logstash_memory_is_refused() -> None:
    """Memory: 1GB is 10^9 bytes, a hard limit (HostConfig.Resources.Memory in
    pkg/executor/docker/executor.go), while Logstash's jvm.options defaults to a 1 GiB heap
    (config/jvm.options at v8.19.20): the heap alone exceeds the limit."""
    spec = job("logstash")
    task = spec["Tasks"][0]
    task["Resources"]["Memory"] = "1GB"
    del task["Env"]["LS_JAVA_OPTS"]
    assert capacity.logstash_memory_problems(spec) == [
        "Tasks[0].Env.LS_JAVA_OPTS: required, with -Xms, -Xmx and -XX:MaxDirectMemorySize"
    ]
    task["Env"]["LS_JAVA_OPTS"] = "-Xms1g -Xmx1g -XX:MaxDirectMemorySize=512m"
    (problem,) = capacity.logstash_memory_problems(spec)
    assert problem.startswith("Memory 1000000000 bytes is below heap 1073741824")


def test_jvm_options_parse_the_last_flag() -> None:
    jvm = capacity.jvm_memory("-Xms512m -Xmx2g -Xmx1g -XX:MaxDirectMemorySize=256m")
    assert (jvm.heap_min, jvm.heap_max, jvm.max_direct) == (512 * MIB, GIB, 256 * MIB)
    assert "-Xms must equal -Xmx" in " ".join(
        capacity.logstash_memory_problems(
            {
                "Tasks": [
                    {
                        "Resources": {"Memory": "4GiB"},
                        "Env": {"LS_JAVA_OPTS": "-Xms512m -Xmx1g -XX:MaxDirectMemorySize=1m"},
                    }
                ]
            }
        )
    )
    with pytest.raises(CapacityError, match="set both -Xms and -Xmx"):
        capacity.jvm_memory("-Xmx1g")
    with pytest.raises(CapacityError, match="JVM size"):
        capacity.jvm_memory("-Xms1x -Xmx1g")


def test_a_templated_resource_is_an_error(tmp_path: Path) -> None:
    for name in ("logstash", "compactor", "generate-logs"):
        (tmp_path / f"{name}.yaml").write_text((JOBS_DIR / f"{name}.yaml").read_text())
    (tmp_path / "queries" / "ops").mkdir(parents=True)
    (tmp_path / "queries" / "ops" / "q.yaml").write_text(
        "Tasks: [{Name: q, Resources: {CPU: '{{.cpu}}'}}]\n"
    )
    with pytest.raises(CapacityError, match=r"q.yaml: Tasks\[0\].Resources: CPU"):
        capacity.node_demand(generator_enabled=False, jobs_dir=tmp_path)
