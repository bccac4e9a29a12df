"""Every key of every node config we generate must be a Bacalhau v1.9.3 config key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from stack_harness import REFERENCE

from infra import nodeconfig

KEYS_FILE = REFERENCE / "config-keys-v1.9.3.txt"


@pytest.fixture(scope="module")
def known_keys() -> set[str]:
    lines = KEYS_FILE.read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def compute() -> dict[str, Any]:
    return nodeconfig.compute_config(
        orchestrators=["nats://orchestrator:4222"],
        token="t0ken",
        labels={"region": "us-east-1", "env": "dev"},
        require_tls=True,
    )


def orchestrator() -> dict[str, Any]:
    return nodeconfig.orchestrator_config(
        token="t0ken",
        labels={"role": "orchestrator"},
        tls_cert_file="/etc/bacalhau/tls/cert.pem",
        tls_key_file="/etc/bacalhau/tls/key.pem",
    )


@pytest.mark.parametrize("render", [compute, orchestrator], ids=["compute", "orchestrator"])
def test_every_key_is_a_bacalhau_key(
    render: Callable[[], dict[str, Any]], known_keys: set[str]
) -> None:
    keys = nodeconfig.dotted_keys(render())
    assert keys, "rendered no keys"
    assert keys - known_keys == set()


def test_key_check_catches_a_typo(known_keys: set[str]) -> None:
    config = compute()
    config["Compute"]["AllowListedLocalPath"] = []
    assert nodeconfig.dotted_keys(config) - known_keys == {"Compute.AllowListedLocalPath"}


def test_compute_node_mounts_only_log_and_state_dirs() -> None:
    config = compute()
    assert config["Compute"]["AllowListedLocalPaths"] == [
        "/var/log/bacalhau-logs:rw",
        "/var/lib/bacalhau-logs:rw",
    ]
    assert config["Labels"] == {"region": "us-east-1", "env": "dev"}
    assert config["Orchestrator"] == {"Enabled": False}


def test_compute_config_round_trips_through_yaml() -> None:
    assert yaml.safe_load(nodeconfig.to_yaml(compute())) == compute()
