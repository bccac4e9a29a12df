"""cloud-config user data: valid by cloud-init's own schema, and fail-closed installs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from aws_harness import AwsRun

from infra import cloudinit, nodeconfig

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "bacalhau"

CLOUD_INIT = shutil.which("cloud-init")
RELEASE = cloudinit.Release(version="v1.9.3")
CA = cloudinit.CaParameter(name="/bacalhau-logs-prod/orchestrator-ca", region="us-east-1")
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
IMAGES = cloudinit.ImageList(
    name="/bacalhau-logs-prod/us-east-1/images", region="us-east-1", registry=REGISTRY
)


def _compute(release: cloudinit.Release = RELEASE) -> str:
    config = nodeconfig.compute_config(
        orchestrators=["nats://198.51.100.7:4222"],
        token="t0ken",
        labels={"region": "us-east-1"},
        tls_ca_cert=cloudinit.ORCHESTRATOR_CA_PATH,
    )
    return cloudinit.compute_user_data(
        release=release,
        node_config_yaml=nodeconfig.to_yaml(config),
        images=IMAGES,
        ca=CA,
    )


def _schema_check(document: str, tmp_path: Path) -> None:
    if CLOUD_INIT is None:
        pytest.fail("cloud-init is not installed (apt-get install -y cloud-init)")
    path = tmp_path / "user-data.yaml"
    path.write_text(document)
    result = subprocess.run(
        [CLOUD_INIT, "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_declared_user_data_is_valid_cloud_config(prod_run: AwsRun, tmp_path: Path) -> None:
    instances = prod_run.of_type("aws:ec2/instance:Instance")
    documents = {instance.inputs["userData"]["value"] for instance in instances}
    # Nodes of one region differ only in labels; one per kind and region is enough to check.
    for index, document in enumerate(sorted(documents)[:4]):
        assert document.startswith("#cloud-config\n")
        directory = tmp_path / str(index)
        directory.mkdir()
        _schema_check(document, directory)


def test_compute_user_data_installs_docker_dirs_and_service(tmp_path: Path) -> None:
    document = _compute()
    _schema_check(document, tmp_path)
    data = yaml.safe_load(document)
    assert "docker" in data["packages"]
    commands = data["runcmd"]
    # Job containers run as the agent and Logstash users, so the directories they write are theirs.
    log_dir = ["install", "-d", "-m", "0755", "-o", "10001", "-g", "10001", nodeconfig.LOG_DIR]
    assert log_dir in commands
    assert [
        "install", "-d", "-m", "0750", "-o", "1000", "-g", "1000", nodeconfig.LOGSTASH_STATE_DIR
    ] in commands  # fmt: skip
    assert commands[-1] == ["systemctl", "enable", "--now", "bacalhau.service"]
    # The CA must be in place before Bacalhau starts.
    assert commands.index([cloudinit.CA_SCRIPT]) < commands.index([cloudinit.INSTALL_SCRIPT])
    files = {f["path"]: f["content"] for f in data["write_files"]}
    unit = files["/etc/systemd/system/bacalhau.service"]
    assert f"serve --config {cloudinit.CONFIG_PATH}" in unit
    assert "Requires=docker.service" in unit


def test_install_verifies_the_release_signature_and_fails_closed() -> None:
    files = {f["path"]: f["content"] for f in yaml.safe_load(_compute())["write_files"]}
    script = files[cloudinit.INSTALL_SCRIPT]
    assert script.startswith("#!/bin/bash\nset -euo pipefail\n")
    assert "bacalhau_v1.9.3_linux_amd64.tar.gz" in script
    assert ".signature.sha256" in script
    assert f"-verify {cloudinit.RELEASE_KEY_PATH}" in script
    assert "sha256sum" not in script
    assert "BEGIN PUBLIC KEY" in files[cloudinit.RELEASE_KEY_PATH]


def test_a_pinned_sha256_is_checked_too() -> None:
    pin = "ab" * 32
    document = _compute(cloudinit.Release(version="v1.9.3", sha256=pin))
    files = {f["path"]: f["content"] for f in yaml.safe_load(document)["write_files"]}
    script = files[cloudinit.INSTALL_SCRIPT]
    assert f'echo "{pin}  $tmp/bacalhau_v1.9.3_linux_amd64.tar.gz" | sha256sum --check' in script
    # The signature is still verified: the pin is an addition, not a replacement.
    assert ".signature.sha256" in script


def test_orchestrator_user_data_is_valid_and_publishes_its_certificate(tmp_path: Path) -> None:
    config = nodeconfig.orchestrator_config(
        token="t0ken",
        api_key="k" * 40,
        labels={},
        tls=nodeconfig.ServerTls(
            cert_file=cloudinit.ORCHESTRATOR_CERT_PATH,
            key_file=cloudinit.ORCHESTRATOR_KEY_PATH,
            ca_file=cloudinit.ORCHESTRATOR_CERT_PATH,
        ),
        api_tls=True,
    )
    assert nodeconfig.dotted_keys(config) >= {"API.TLS.CertFile", "Orchestrator.TLS.ServerKey"}
    document = cloudinit.orchestrator_user_data(
        release=RELEASE,
        node_config_yaml=nodeconfig.to_yaml(config),
        ca=CA,
        public_ip="198.51.100.7",
    )
    _schema_check(document, tmp_path)
    files = {f["path"]: f["content"] for f in yaml.safe_load(document)["write_files"]}
    script = files[cloudinit.CA_SCRIPT]
    # The public IP clients dial, and 0.0.0.0: the orchestrator dials its own NATS server at
    # tls://<Orchestrator.Host>:4222 (tests/real/test_real_cluster_security.py shows why).
    assert "subjectAltName=IP:198.51.100.7,IP:0.0.0.0,IP:127.0.0.1" in script
    assert "aws ssm put-parameter --region us-east-1" in script


def test_node_config_keys_are_known_to_bacalhau() -> None:
    keys_file = REFERENCE / "config-keys-v1.9.3.txt"
    known = {line for line in keys_file.read_text().splitlines() if line and line[0] != "#"}
    config = nodeconfig.compute_config(
        orchestrators=["nats://x:4222"],
        token="t",
        labels={},
        tls_ca_cert="/ca.pem",
    )
    assert nodeconfig.dotted_keys(config) <= known
