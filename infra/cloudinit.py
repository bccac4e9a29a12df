"""cloud-config user data for AWS nodes (Amazon Linux 2023), rendered as data.

Pure: callers pass resolved strings (the node config YAML already holds the token), so this module
is tested with ``cloud-init schema`` and plain asserts. Both node kinds install the pinned Bacalhau
release only after verifying it, and run it as a systemd service.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from infra import nodeconfig, tls
from infra.versions import (
    BACALHAU_RELEASE_BASE_URL,
    BACALHAU_RELEASE_PUBLIC_KEY,
    bacalhau_tarball,
)

CONFIG_PATH = "/etc/bacalhau/config.yaml"
RELEASE_KEY_PATH = "/etc/bacalhau/release-key.pem"
ORCHESTRATOR_CA_PATH = "/etc/bacalhau/orchestrator-ca.pem"
ORCHESTRATOR_CERT_PATH = "/etc/bacalhau/tls/server.pem"
ORCHESTRATOR_KEY_PATH = "/etc/bacalhau/tls/server-key.pem"
INSTALL_SCRIPT = "/usr/local/sbin/bacalhau-logs-install"
CA_SCRIPT = "/usr/local/sbin/bacalhau-logs-ca"
BACALHAU_BIN = "/usr/local/bin/bacalhau"
# The CA parameter holds this until the orchestrator has published its certificate.
CA_PENDING = "pending"


@dataclass(frozen=True)
class Release:
    version: str
    sha256: str | None = None


@dataclass(frozen=True)
class CaParameter:
    """The SSM parameter (in the home region) through which the orchestrator's certificate flows."""

    name: str
    region: str


def _install_script(release: Release) -> str:
    tarball = bacalhau_tarball(release.version)
    url = f"{BACALHAU_RELEASE_BASE_URL}/{tarball}"
    pin = ""
    if release.sha256:
        pin = f'echo "{release.sha256}  $tmp/{tarball}" | sha256sum --check --strict\n'
    # Fail closed: any download or verification error stops the boot before Bacalhau runs.
    return f"""#!/bin/bash
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl --fail --silent --show-error --location --retry 5 -o "$tmp/{tarball}" {shlex.quote(url)}
curl --fail --silent --show-error --location --retry 5 -o "$tmp/sig.b64" \\
  {shlex.quote(url + ".signature.sha256")}
openssl base64 -d -in "$tmp/sig.b64" -out "$tmp/sig"
openssl dgst -sha256 -verify {RELEASE_KEY_PATH} -signature "$tmp/sig" "$tmp/{tarball}"
{pin}tar -xzf "$tmp/{tarball}" -C "$tmp" bacalhau
install -m 0755 "$tmp/bacalhau" {BACALHAU_BIN}
"""


def _unit(*, needs_docker: bool) -> str:
    after = "network-online.target docker.service" if needs_docker else "network-online.target"
    requires = "Requires=docker.service\n" if needs_docker else ""
    return f"""[Unit]
Description=Bacalhau node (bacalhau-logs)
Wants=network-online.target
After={after}
{requires}
[Service]
ExecStart={BACALHAU_BIN} serve --config {CONFIG_PATH}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


def _fetch_ca_script(ca: CaParameter) -> str:
    # Compute nodes may boot before the orchestrator has published its certificate: wait for it.
    return f"""#!/bin/bash
set -euo pipefail
for _ in $(seq 1 120); do
  value=$(aws ssm get-parameter --region {ca.region} --name {shlex.quote(ca.name)} \\
    --query Parameter.Value --output text)
  if [ "$value" != "{CA_PENDING}" ]; then
    printf '%s\\n' "$value" > {ORCHESTRATOR_CA_PATH}
    exit 0
  fi
  sleep 10
done
echo "orchestrator certificate not published in {ca.name}" >&2
exit 1
"""


def _publish_ca_script(ca: CaParameter, public_ip: str) -> str:
    # Generated once on the instance, so the private key never leaves it; kept across reboots.
    make_cert = shlex.join(
        tls.self_signed_command(
            key_path=ORCHESTRATOR_KEY_PATH,
            cert_path=ORCHESTRATOR_CERT_PATH,
            sans=tls.orchestrator_sans(public_ip),
        )
    )
    return f"""#!/bin/bash
set -euo pipefail
install -d -m 0700 /etc/bacalhau/tls
if [ ! -s {ORCHESTRATOR_KEY_PATH} ]; then
  {make_cert}
  chmod 0600 {ORCHESTRATOR_KEY_PATH}
fi
aws ssm put-parameter --region {ca.region} --name {shlex.quote(ca.name)} --overwrite \\
  --type String --value "file://{ORCHESTRATOR_CERT_PATH}"
"""


def _document(
    *,
    hostname: str | None = None,
    packages: list[str],
    files: list[dict[str, Any]],
    commands: list[list[str]],
) -> str:
    body: dict[str, Any] = {}
    if hostname:
        # Bacalhau names nodes by hostname (NameProvider: hostname), so set the stack's name.
        body |= {"hostname": hostname, "preserve_hostname": False}
    body |= {
        "package_update": True,
        "packages": packages,
        "write_files": files,
        "runcmd": commands,
    }
    return "#cloud-config\n" + yaml.safe_dump(body, sort_keys=False, width=1000)


def _file(path: str, content: str, permissions: str = "0644") -> dict[str, Any]:
    return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}


def _common_files(release: Release, node_config_yaml: str, *, needs_docker: bool) -> list[Any]:
    return [
        _file(RELEASE_KEY_PATH, BACALHAU_RELEASE_PUBLIC_KEY),
        _file(INSTALL_SCRIPT, _install_script(release), "0755"),
        # Holds the node token: root only.
        _file(CONFIG_PATH, node_config_yaml, "0600"),
        _file("/etc/systemd/system/bacalhau.service", _unit(needs_docker=needs_docker)),
    ]


def _start_bacalhau() -> list[list[str]]:
    return [
        [INSTALL_SCRIPT],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "bacalhau.service"],
    ]


def compute_user_data(
    *,
    release: Release,
    node_config_yaml: str,
    ecr_registry: str,
    ca: CaParameter | None,
    hostname: str | None = None,
) -> str:
    """A compute node: Docker (pulling the stack's images from ECR with the instance role),
    the contract's log and state directories, then Bacalhau."""
    docker_config = json.dumps({"credHelpers": {ecr_registry: "ecr-login"}}, indent=2) + "\n"
    files = _common_files(release, node_config_yaml, needs_docker=True)
    files.append(_file("/root/.docker/config.json", docker_config, "0600"))
    commands: list[list[str]] = [
        ["systemctl", "enable", "--now", "docker.service"],
        *nodeconfig.prepare_directories(),
    ]
    if ca is not None:
        files.append(_file(CA_SCRIPT, _fetch_ca_script(ca), "0755"))
        commands.append([CA_SCRIPT])
    return _document(
        hostname=hostname,
        packages=["docker", "amazon-ecr-credential-helper", "openssl"],
        files=files,
        commands=commands + _start_bacalhau(),
    )


def orchestrator_user_data(
    *,
    release: Release,
    node_config_yaml: str,
    ca: CaParameter,
    public_ip: str,
) -> str:
    """The self-hosted orchestrator: a self-signed certificate for its public IP, published to
    ``ca`` for the compute nodes to trust, then Bacalhau (NATS and API over TLS)."""
    files = _common_files(release, node_config_yaml, needs_docker=False)
    files.append(_file(CA_SCRIPT, _publish_ca_script(ca, public_ip), "0755"))
    return _document(
        packages=["openssl"],
        files=files,
        commands=[[CA_SCRIPT], *_start_bacalhau()],
    )
