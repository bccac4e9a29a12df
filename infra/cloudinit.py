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
# Compute nodes pull the stack's images themselves (see ImageList).
PULL_IMAGES_SCRIPT = "/usr/local/sbin/bacalhau-logs-pull-images"
PULL_IMAGES_UNIT = "bacalhau-logs-images"
# The docker CLI finds credHelpers here; systemd units and SSM commands have no $HOME to go by.
DOCKER_CONFIG_DIR = "/root/.docker"


@dataclass(frozen=True)
class Release:
    version: str
    sha256: str | None = None


@dataclass(frozen=True)
class ImageList:
    """The SSM parameter (in the node's region) listing the images its jobs run, by digest.

    Bacalhau pulls through the Docker Engine API and sends credentials only for the default
    registry (DOCKER_USERNAME/PASSWORD, getAuthToken in pkg/docker/docker.go at v1.9.3); the
    credential helpers in the CLI's config.json are never read by the daemon. But it pulls nothing
    when the image is already there for the node's platform (PullImage and ImageDistribution
    inspect the local image first), so nodes pull every listed image with the docker CLI and the
    ECR credential helper (the instance role) before Bacalhau starts, and again on each change.
    """

    name: str
    region: str
    # <account>.dkr.ecr.<region>.amazonaws.com: only images from there are pulled.
    registry: str


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
    if needs_docker:
        # A compute node bids only on images it already has (it cannot pull from ECR itself),
        # so the stack's images are pulled first at every boot; a failed pull does not keep
        # Bacalhau down (the timer retries).
        after += f" {PULL_IMAGES_UNIT}.service"
        requires += f"Wants={PULL_IMAGES_UNIT}.service\n"
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


def _pull_images_script(images: ImageList) -> str:
    # Reads the list (waiting for a stack that is still pushing), accepts only digests from the
    # stack's own registry, and pulls what is missing; docker pull by digest is idempotent.
    registry = images.registry.replace(".", "\\.")
    return f"""#!/bin/bash
set -euo pipefail
# The list is split on whitespace below; never expand it as a glob.
set -f
export DOCKER_CONFIG={DOCKER_CONFIG_DIR}
list=""
for _ in $(seq 1 60); do
  if list=$(aws ssm get-parameter --region {images.region} --name {shlex.quote(images.name)} \\
      --query Parameter.Value --output text); then
    break
  fi
  sleep 10
done
if [ -z "$list" ]; then
  echo "no image list in {images.name}" >&2
  exit 1
fi
status=0
for ref in $list; do
  if [[ ! "$ref" =~ ^{registry}/[a-z0-9._/-]+@sha256:[0-9a-f]{{64}}$ ]]; then
    echo "skipping $ref: not an image of {images.registry} by digest" >&2
    status=1
    continue
  fi
  if ! docker image inspect "$ref" >/dev/null 2>&1; then
    docker pull --quiet "$ref" || status=1
  fi
done
exit "$status"
"""


def _pull_images_units() -> tuple[str, str]:
    service = f"""[Unit]
Description=Pull the stack's job images from ECR (bacalhau-logs)
Wants=network-online.target
After=network-online.target docker.service
Requires=docker.service

[Service]
Type=oneshot
ExecStart={PULL_IMAGES_SCRIPT}
"""
    # A safety net for a node that missed a pull the stack ran on it (stopped, replaced): the
    # stack itself pulls on every node before it updates a job (aws_image_pull.py).
    timer = """[Unit]
Description=Pull the stack's job images regularly (bacalhau-logs)

[Timer]
OnBootSec=5min
OnUnitActiveSec=5min

[Install]
WantedBy=timers.target
"""
    return service, timer


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
    images: ImageList,
    ca: CaParameter | None,
    hostname: str | None = None,
) -> str:
    """A compute node: Docker, the stack's images pulled from ECR with the instance role (at
    boot, before Bacalhau, and every 5 minutes), the contract's log and state directories, then
    Bacalhau."""
    docker_config = json.dumps({"credHelpers": {images.registry: "ecr-login"}}, indent=2) + "\n"
    service, timer = _pull_images_units()
    files = _common_files(release, node_config_yaml, needs_docker=True)
    files += [
        _file(f"{DOCKER_CONFIG_DIR}/config.json", docker_config, "0600"),
        _file(PULL_IMAGES_SCRIPT, _pull_images_script(images), "0755"),
        _file(f"/etc/systemd/system/{PULL_IMAGES_UNIT}.service", service),
        _file(f"/etc/systemd/system/{PULL_IMAGES_UNIT}.timer", timer),
    ]
    commands: list[list[str]] = [
        ["systemctl", "enable", "--now", "docker.service"],
        *nodeconfig.prepare_directories(),
    ]
    if ca is not None:
        files.append(_file(CA_SCRIPT, _fetch_ca_script(ca), "0755"))
        commands.append([CA_SCRIPT])
    commands += [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", f"{PULL_IMAGES_UNIT}.timer"],
        # Not --no-block: cloud-init waits, so Bacalhau starts with the images in place.
        ["systemctl", "start", f"{PULL_IMAGES_UNIT}.service"],
    ]
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
