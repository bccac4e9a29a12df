"""Local (dind) nodes offer a fixed capacity that holds one node's jobs on any machine."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from stack_harness import REFERENCE, REPO, StackRun, run_program, stack_config

from infra import capacity, nodeconfig
from tests.support.pulumi_mocks import unwrap

CONTAINER = "docker:index/container:Container"


@pytest.fixture(scope="module")
def dev() -> StackRun:
    return run_program(stack_config(REPO / "Pulumi.dev.yaml"), stack="dev")


def node_configs(run: StackRun) -> list[dict[str, Any]]:
    configs = []
    for container in run.of_type(CONTAINER):
        if "-node-" not in container.inputs["name"]:
            continue
        uploads = unwrap(container.inputs["uploads"])
        content = next(u for u in uploads if u["file"].endswith("config.yaml"))["content"]
        configs.append(yaml.safe_load(content))
    return configs


def test_every_dev_node_offers_what_its_jobs_need_together(dev: StackRun) -> None:
    """Without it a node offers 80% of the whole machine (pkg/config/defaults.go
    AllocatedCapacity, pkg/compute/capacity/system/provider.go GetTotalCapacity), which on a
    2-core machine is 1.6 CPU: less than Logstash, the generator, the compactor and a query."""
    demand = capacity.node_demand(generator_enabled=True).total
    assert not demand.fits_in(capacity.allocated(2, 8 * capacity.GIB))
    configs = node_configs(dev)
    assert len(configs) == 3
    for config in configs:
        offered = config["Compute"]["AllocatedCapacity"]
        assert capacity.parse_cpu(offered["CPU"]) >= demand.cpu_millicores
        assert capacity.parse_bytes(offered["Memory"]) >= demand.memory_bytes
        # pkg/config/types/resource.go ToResource parses all four; an empty one fails the node.
        assert offered["Disk"] and offered["GPU"]


def test_the_allocation_uses_only_bacalhau_keys(dev: StackRun) -> None:
    lines = (REFERENCE / "config-keys-v1.9.3.txt").read_text().splitlines()
    known = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    for config in node_configs(dev):
        keys = nodeconfig.dotted_keys(config)
        assert {k for k in keys if k.startswith("Compute.AllocatedCapacity")} == {
            "Compute.AllocatedCapacity.CPU",
            "Compute.AllocatedCapacity.Memory",
            "Compute.AllocatedCapacity.Disk",
            "Compute.AllocatedCapacity.GPU",
        }
        assert keys <= known
