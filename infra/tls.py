"""The self-hosted orchestrator's certificate: which names it carries and how it is made.

One function makes the ``openssl`` command for both the AWS orchestrator's boot script and the
real-Bacalhau test cluster, so the tests exercise the certificate the stack really deploys.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

CERT_DAYS = 825
COMMON_NAME = "bacalhau-logs-orchestrator"


def orchestrator_sans(address: str, listen_host: str = "0.0.0.0") -> list[str]:
    """subjectAltName entries for an orchestrator reached at ``address`` that listens on
    ``listen_host``.

    Clients verify ``address`` (the public IP compute nodes and operators dial). The orchestrator
    also dials its own NATS server, at ``tls://<listen_host>:<port>`` (nats-server's
    ``Server.ClientURL`` as used by pkg/nats/transport/nats.go at v1.9.3), and verifies that
    name too: without it, it fails to start. Loopback is added for tools on the instance.
    """
    names = [address, listen_host, "127.0.0.1"]
    unique = list(dict.fromkeys(names))
    return [f"{'IP' if _is_ip(name) else 'DNS'}:{name}" for name in unique]


def self_signed_command(
    *, key_path: str, cert_path: str, sans: Sequence[str], days: int = CERT_DAYS
) -> list[str]:
    """``openssl req`` making a self-signed RSA certificate (its own CA) and an unencrypted key."""
    if not sans:
        raise ValueError("sans: at least one subjectAltName is required")
    return [
        "openssl", "req", "-x509", "-newkey", "rsa:3072", "-sha256", "-nodes",
        "-days", str(days),
        "-subj", f"/CN={COMMON_NAME}",
        "-addext", "subjectAltName=" + ",".join(sans),
        "-keyout", key_path, "-out", cert_path,
    ]  # fmt: skip


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
