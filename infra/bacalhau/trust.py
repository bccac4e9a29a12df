"""Trusting a self-hosted orchestrator's self-signed certificate, published in SSM at boot.

The orchestrator generates its key and certificate on first boot and writes the certificate (not
secret) to an SSM parameter that holds ``pending`` until then. The job provider reads it with the
deployer's default AWS credentials, waiting a bounded time for a booting orchestrator, and hands
requests a CA file, so TLS stays verified against exactly that certificate.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Must match infra.cloudinit.CA_PENDING (kept literal so the provider imports nothing of Pulumi's).
CA_PENDING = "pending"
DEFAULT_CA_WAIT_SECONDS = 900.0
_POLL_SECONDS = 10.0


class CaNotPublished(RuntimeError):
    """The orchestrator did not publish its certificate within the wait."""


@dataclass(frozen=True)
class CaSource:
    """Where the orchestrator's certificate is published: an SSM parameter name and its region."""

    parameter: str
    region: str


def read_ca(
    source: CaSource,
    *,
    wait_seconds: float = DEFAULT_CA_WAIT_SECONDS,
    ssm_client: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """The PEM certificate in ``source``, polling while it still says ``pending``."""
    if ssm_client is None:
        import boto3  # deferred: only deploys with a self-hosted orchestrator need it

        ssm_client = boto3.client("ssm", region_name=source.region)
    deadline = time.monotonic() + wait_seconds
    while True:
        value = str(ssm_client.get_parameter(Name=source.parameter)["Parameter"]["Value"]).strip()
        if value != CA_PENDING:
            if "-----BEGIN CERTIFICATE-----" not in value:
                raise CaNotPublished(f"SSM parameter {source.parameter} holds no PEM certificate")
            return value + "\n"
        if time.monotonic() + _POLL_SECONDS > deadline:
            raise CaNotPublished(
                f"the orchestrator has not published its certificate to {source.parameter} "
                f"({source.region}) within {wait_seconds:.0f}s; check that its instance booted"
            )
        sleep(_POLL_SECONDS)


def ca_file(pem: str, directory: Path | None = None) -> str:
    """A file holding ``pem`` for ``requests``' ``verify=``; named by content, so rewriting it is
    idempotent (the certificate is public, so a shared temporary directory is fine)."""
    folder = directory or Path(tempfile.gettempdir())
    path = folder / f"bacalhau-logs-ca-{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
    if not path.exists() or path.read_text() != pem:
        path.write_text(pem)
    return str(path)
