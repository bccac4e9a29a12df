"""Bacalhau node configuration (the YAML ``bacalhau serve --config`` reads), rendered as data.

Only keys that Bacalhau v1.9 knows are produced; ``tests/infra/test_nodeconfig.py`` checks every
dotted key against the release's key list, because Bacalhau ignores unknown keys silently and a
typo would otherwise surface as a node that quietly lacks a setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

# What jobs may mount, each read-write. Bacalhau matches a job's SourcePath against each entry
# as a whole path (doublestar.PathMatch in pkg/storage/local/storage.go at v1.9.3): a parent
# directory does not admit its children, so these are exactly the paths jobs/ mounts.
ALLOW_LISTED_PATHS = (LOG_DIR, LOGSTASH_STATE_DIR)

# The one API user the stack creates: the Pulumi provider and `python -m infra.ops` act as it.
API_USER_ALIAS = "bacalhau-logs"
# Capabilities of pkg/authz/capabilities.go: jobs (submit, stop, describe) and node listings.
API_USER_ACTIONS = ("read:job", "write:job", "read:node")
MIN_API_KEY_LENGTH = 20
MAX_API_KEY_LENGTH = 255

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
    tls_ca_cert: str | None = None,
    data_dir: str = BACALHAU_DATA_DIR,
    api_port: int = API_PORT,
) -> dict[str, Any]:
    """A compute-only node that joins ``orchestrators`` with ``token``.

    Jobs may mount exactly the host paths in ``ALLOW_LISTED_PATHS``. ``tls_ca_cert`` is the path
    of a CA file to verify a self-signed orchestrator's certificate against: setting it makes
    the node's NATS client insist on TLS and verify it (nats.go ``RootCAs`` sets ``Secure``).
    ``Compute.TLS.RequireTLS`` is never set: in v1.9.3 it makes the client open with a TLS
    handshake before NATS's INFO (``nats.TLSHandshakeFirst()`` in pkg/nats/transport/nats.go),
    which Bacalhau's NATS server never enables, so every connection would fail.

    The node's own API serves nothing the stack uses (the orchestrator talks to it over NATS),
    so it listens on loopback only.
    """
    compute: dict[str, Any] = {
        "Enabled": True,
        "Orchestrators": list(orchestrators),
        "Auth": {"Token": token},
        "AllowListedLocalPaths": [f"{path}:rw" for path in ALLOW_LISTED_PATHS],
        "Env": {"AllowList": list(NODE_ENV_ALLOW_LIST)},
    }
    if tls_ca_cert:
        compute["TLS"] = {"CACert": tls_ca_cert}
    return {
        **_common(data_dir, labels),
        "API": {"Host": "127.0.0.1", "Port": api_port},
        "Orchestrator": {"Enabled": False},
        "Compute": compute,
        # Results go to S3 only; the local publisher would serve files over HTTP from the node.
        "Publishers": {"Disabled": ["local"]},
    }


@dataclass(frozen=True)
class ServerTls:
    """A certificate and key the orchestrator serves NATS (and optionally its API) with.

    ``ca_file`` verifies that certificate; for a self-signed one it is the certificate itself.
    """

    cert_file: str
    key_file: str
    ca_file: str


def orchestrator_config(
    *,
    token: str,
    api_key: str,
    labels: Mapping[str, str],
    tls: ServerTls | None = None,
    api_tls: bool = False,
    host: str = "0.0.0.0",
    nats_port: int = NATS_PORT,
    api_port: int = API_PORT,
    data_dir: str = BACALHAU_DATA_DIR,
) -> dict[str, Any]:
    """An orchestrator-only node; compute nodes must present ``token`` to join, API clients
    ``api_key`` (as ``Authorization: Bearer``).

    With ``tls``, NATS is served over TLS, and ``Orchestrator.TLS.CACert`` is set because the
    orchestrator dials its own NATS server at ``tls://<host>:<port>`` (nats-server's
    ``ClientURL``, used in pkg/nats/transport/nats.go) and adds root CAs only from that key: the
    certificate must name ``host`` (see ``infra.tls.orchestrator_sans``). ``api_tls`` serves the
    API over HTTPS with the same certificate.
    """
    orchestrator: dict[str, Any] = {
        "Enabled": True,
        "Host": host,
        "Port": nats_port,
        "Auth": {"Token": token},
    }
    api: dict[str, Any] = {"Host": host, "Port": api_port, "Auth": api_auth(api_key)}
    if tls is not None:
        orchestrator["TLS"] = {
            "ServerCert": tls.cert_file,
            "ServerKey": tls.key_file,
            "CACert": tls.ca_file,
        }
        if api_tls:
            api["TLS"] = {"CertFile": tls.cert_file, "KeyFile": tls.key_file}
    return {
        **_common(data_dir, labels),
        "API": api,
        "Orchestrator": orchestrator,
        "Compute": {"Enabled": False},
    }


def _common(data_dir: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "DataDir": data_dir,
        "NameProvider": "hostname",
        "DisableAnalytics": True,
        # The release is pinned: no daily call home to ask for a newer one (pkg/version/update.go
        # skips the check when the interval is zero or less).
        "UpdateConfig": {"Interval": 0},
        "Labels": dict(labels),
        "Logging": {"Level": "info", "Mode": "json"},
    }


def api_auth(api_key: str) -> dict[str, Any]:
    """``API.Auth`` with one API-key user who may manage jobs and read nodes.

    Without any ``API.Auth.Users`` a v1.9.3 node allows every request (pkg/node/node.go picks the
    always-allow policy of pkg/authz/policy.go), including jobs with read-write host mounts and
    host networking. Keys must be 20 to 255 characters (pkg/authz/entry_point_authorizer.go), and
    one with three dot-separated parts would be taken for a JWT and refused.
    """
    if not MIN_API_KEY_LENGTH <= len(api_key) <= MAX_API_KEY_LENGTH:
        raise ValueError(
            f"API key: must be {MIN_API_KEY_LENGTH} to {MAX_API_KEY_LENGTH} characters "
            f"(Bacalhau refuses others), got {len(api_key)}"
        )
    if api_key.count(".") == 2:
        raise ValueError("API key: must not look like a JWT (three dot-separated parts)")
    return {
        "Users": [
            {
                "Alias": API_USER_ALIAS,
                "APIKey": api_key,
                "Capabilities": [{"Actions": list(API_USER_ACTIONS)}],
            }
        ]
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
