"""Bacalhau node configuration (the YAML ``bacalhau serve --config`` reads), rendered as data.

Only keys that Bacalhau v1.9 knows are produced; ``tests/infra/test_nodeconfig.py`` checks every
dotted key against the release's key list, because Bacalhau ignores unknown keys silently and a
typo would otherwise surface as a node that quietly lacks a setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

# Host paths on a compute node that jobs may mount (docs/contracts.md).
LOG_DIR = "/var/log/bacalhau-logs"
STATE_DIR = "/var/lib/bacalhau-logs"
BACALHAU_DATA_DIR = "/var/lib/bacalhau"

# Job containers run as these users (agent/Dockerfile's user, the Logstash base image's user),
# so the node directories they write must belong to them.
AGENT_UID = 10001
LOGSTASH_UID = 1000
LOGSTASH_STATE_DIR = f"{STATE_DIR}/logstash"

API_PORT = 1234
NATS_PORT = 4222

# Environment variables a compute node passes to jobs that ask for them with `env:NAME`.
NODE_ENV_ALLOW_LIST = (
    "LOGS_S3_ACCESS_KEY_ID",
    "LOGS_S3_SECRET_ACCESS_KEY",
    "LOGS_OPENSEARCH_USER",
    "LOGS_OPENSEARCH_PASSWORD",
)

# Keys whose values are maps or lists: their entries are data, not config keys.
OPAQUE_KEYS = frozenset(
    {
        "Labels",
        "Compute.AllowListedLocalPaths",
        "Compute.Orchestrators",
        "Compute.Env.AllowList",
        "Orchestrator.Cluster.Peers",
    }
)


def compute_config(
    *,
    orchestrators: Sequence[str],
    token: str,
    labels: Mapping[str, str],
    require_tls: bool,
    tls_ca_cert: str | None = None,
) -> dict[str, Any]:
    """A compute-only node that joins ``orchestrators`` with ``token``.

    Jobs may mount only the log and state directories, read-write because the demo generator
    writes logs and the shipper keeps its queue there. ``tls_ca_cert`` is the path of a CA file
    to trust for a self-signed orchestrator; public CAs need none.
    """
    tls: dict[str, Any] = {"RequireTLS": require_tls}
    if tls_ca_cert:
        tls["CACert"] = tls_ca_cert
    return {
        "DataDir": BACALHAU_DATA_DIR,
        "NameProvider": "hostname",
        "DisableAnalytics": True,
        "Labels": dict(labels),
        "Orchestrator": {"Enabled": False},
        "Compute": {
            "Enabled": True,
            "Orchestrators": list(orchestrators),
            "Auth": {"Token": token},
            "TLS": tls,
            "AllowListedLocalPaths": [f"{LOG_DIR}:rw", f"{STATE_DIR}:rw"],
            "Env": {"AllowList": list(NODE_ENV_ALLOW_LIST)},
        },
        "Logging": {"Level": "info", "Mode": "json"},
    }


def orchestrator_config(
    *,
    token: str,
    labels: Mapping[str, str],
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    api_tls: bool = False,
) -> dict[str, Any]:
    """An orchestrator-only node; compute nodes must present ``token`` to join.

    ``api_tls`` serves the API over HTTPS with the same certificate as NATS.
    """
    orchestrator: dict[str, Any] = {
        "Enabled": True,
        "Host": "0.0.0.0",
        "Port": NATS_PORT,
        "Auth": {"Token": token},
    }
    if tls_cert_file and tls_key_file:
        orchestrator["TLS"] = {"ServerCert": tls_cert_file, "ServerKey": tls_key_file}
    api: dict[str, Any] = {"Host": "0.0.0.0", "Port": API_PORT}
    if api_tls and tls_cert_file and tls_key_file:
        api["TLS"] = {"CertFile": tls_cert_file, "KeyFile": tls_key_file}
    return {
        "DataDir": BACALHAU_DATA_DIR,
        "NameProvider": "hostname",
        "DisableAnalytics": True,
        "Labels": dict(labels),
        "API": api,
        "Orchestrator": orchestrator,
        "Compute": {"Enabled": False},
        "Logging": {"Level": "info", "Mode": "json"},
    }


def prepare_directories() -> list[list[str]]:
    """Commands (argv lists, for cloud-init or a shell) that create the directories jobs mount,
    owned by the users the job containers run as; safe to run again on every boot."""
    return [
        ["install", "-d", "-m", "0755", "-o", str(AGENT_UID), "-g", str(AGENT_UID), LOG_DIR],
        ["install", "-d", "-m", "0755", STATE_DIR],
        [
            "install", "-d", "-m", "0750",
            "-o", str(LOGSTASH_UID), "-g", str(LOGSTASH_UID),
            LOGSTASH_STATE_DIR,
        ],
    ]  # fmt: skip


def to_yaml(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=True)


def dotted_keys(config: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Every config key as a dotted path, stopping at keys whose values are data."""
    keys: set[str] = set()
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and path not in OPAQUE_KEYS:
            keys |= dotted_keys(value, f"{path}.")
        else:
            keys.add(path)
    return keys
