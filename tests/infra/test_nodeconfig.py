"""Node configs: every key a Bacalhau v1.9.3 key, and the rules of the release they must meet.

The same rules run against the real release in tests/real/ (the cluster there uses these
functions); these plain tests keep the rendering honest without starting anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from stack_harness import REFERENCE

from infra import nodeconfig
from infra.bacalhau.templates import render_job_file, template_variables

KEYS_FILE = REFERENCE / "config-keys-v1.9.3.txt"
JOBS = sorted((Path(__file__).resolve().parents[2] / "jobs").rglob("*.yaml"))
API_KEY = "k" * 40


@pytest.fixture(scope="module")
def known_keys() -> set[str]:
    lines = KEYS_FILE.read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def compute() -> dict[str, Any]:
    return nodeconfig.compute_config(
        orchestrators=["nats://orchestrator:4222"],
        token="t0ken",
        labels={"region": "us-east-1", "env": "dev"},
        tls_ca_cert="/etc/bacalhau/orchestrator-ca.pem",
    )


def orchestrator() -> dict[str, Any]:
    return nodeconfig.orchestrator_config(
        token="t0ken",
        api_key=API_KEY,
        labels={"role": "orchestrator"},
        tls=nodeconfig.ServerTls(
            cert_file="/etc/bacalhau/tls/cert.pem",
            key_file="/etc/bacalhau/tls/key.pem",
            ca_file="/etc/bacalhau/tls/cert.pem",
        ),
        api_tls=True,
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


def test_compute_node_verifies_tls_without_require_tls() -> None:
    """Compute.TLS.RequireTLS turns into nats.TLSHandshakeFirst() (pkg/nats/transport/nats.go
    at v1.9.3), which Bacalhau's NATS server never enables; the CA alone makes nats.go insist
    on TLS and verify it (nats.RootCAs sets Options.Secure)."""
    config = compute()
    assert config["Compute"]["TLS"] == {"CACert": "/etc/bacalhau/orchestrator-ca.pem"}
    assert "RequireTLS" not in yaml.safe_dump(config)


def test_orchestrator_trusts_its_own_certificate() -> None:
    """The orchestrator dials its own NATS server and adds root CAs only from
    Orchestrator.TLS.CACert (pkg/nats/transport/nats.go, CreateClient)."""
    tls = orchestrator()["Orchestrator"]["TLS"]
    assert tls["CACert"] == tls["ServerCert"]


def test_orchestrator_api_requires_an_api_key_user() -> None:
    """Without API.Auth.Users a v1.9.3 node allows every request (pkg/node/node.go chooses
    authz.AlwaysAllow, pkg/authz/policy.go)."""
    (user,) = orchestrator()["API"]["Auth"]["Users"]
    assert user["APIKey"] == API_KEY
    assert user["Capabilities"] == [{"Actions": ["read:job", "write:job", "read:node"]}]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("short", "20 to 255 characters"),
        ("a" * 256, "20 to 255"),
        ("aaaaaaa.bbbbbbbb.cccccc", "JWT"),
    ],
)
def test_api_keys_bacalhau_would_refuse_are_refused_here(key: str, problem: str) -> None:
    """pkg/authz/entry_point_authorizer.go: MinimumAPIKeyLength 20, MaximumAPIKeyLength 255;
    a bearer token with three dot-separated parts goes to the JWT authorizer (isJWTToken)."""
    with pytest.raises(ValueError, match=problem):
        nodeconfig.api_auth(key)


def test_nodes_never_call_home_and_serve_only_on_loopback() -> None:
    """pkg/version/update.go skips the update check when UpdateConfig.Interval <= 0."""
    config = compute()
    assert config["UpdateConfig"] == {"Interval": 0}
    assert config["API"]["Host"] == "127.0.0.1"
    assert config["Publishers"] == {"Disabled": ["local"]}


def _local_inputs(path: Path) -> list[dict[str, Any]]:
    job = render_job_file(path, {name: "sample" for name in template_variables(path)})
    return [
        source["Source"]["Params"]
        for task in job["Tasks"]
        for source in task.get("InputSources") or []
        if source["Source"]["Type"] in ("local", "localDirectory")
    ]


@pytest.mark.parametrize("path", JOBS, ids=lambda path: path.name)
def test_every_local_input_of_every_job_is_allow_listed(path: Path) -> None:
    """v1.9.3 admits a local input only if an allow-list entry matches its whole SourcePath
    (doublestar.PathMatch in pkg/storage/local/storage.go matchAllowedPath): a parent folder
    does not admit its children. Our entries contain no glob characters, so a match is an
    equal path; tests/real/ checks the same against the real compute nodes."""
    allowed = {entry.rsplit(":", 1)[0]: entry.endswith(":rw") for entry in _allow_list()}
    assert not any(char in "".join(allowed) for char in "*?[]{}"), "entries are literal paths"
    for params in _local_inputs(path):
        assert params["SourcePath"] in allowed, f"{path.name}: {params['SourcePath']}"
        if params.get("ReadWrite"):
            assert allowed[params["SourcePath"]], f"{path.name}: needs write access"


def test_the_old_parent_folder_entry_would_not_admit_logstash_state() -> None:
    assert "/var/lib/bacalhau-logs" not in {e.rsplit(":", 1)[0] for e in _allow_list()}
    assert nodeconfig.LOGSTASH_STATE_DIR in {e.rsplit(":", 1)[0] for e in _allow_list()}


def _allow_list() -> list[str]:
    entries: list[str] = compute()["Compute"]["AllowListedLocalPaths"]
    return entries


def test_compute_config_round_trips_through_yaml() -> None:
    assert yaml.safe_load(nodeconfig.to_yaml(compute())) == compute()
