"""Who may talk to the real v1.9.3 cluster: API clients with the key, nodes with the token and
a verified certificate, and an orchestrator whose certificate names the address it dials."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from infra import tls
from infra.bacalhau.client import JOBS_PATH, BacalhauAPIError
from tests.real.cluster import LOOPBACK, Cluster, stop_if_active

JOB = {
    "Name": "unauthenticated-probe",
    "Type": "batch",
    "Count": 1,
    "Tasks": [{"Name": "t", "Engine": {"Type": "docker", "Params": {"Image": "busybox:1.36"}}}],
}


def test_api_refuses_requests_without_the_key(cluster: Cluster) -> None:
    """With API.Auth.Users set, v1.9.3 routes every /api/v1/orchestrator request through the
    entry-point authorizer (pkg/node/node.go, pkg/authz/entry_point_authorizer.go): no
    Authorization header or an unknown key is a 401 and nothing is submitted."""
    for headers in ({}, {"Authorization": "Bearer " + "0" * 40}):
        for method, body in (("GET", None), ("PUT", {"Job": JOB})):
            answer = requests.request(
                method,
                cluster.api_url + JOBS_PATH,
                json=body,
                headers=headers,
                verify=str(cluster.cert),
                timeout=10,
            )
            assert answer.status_code == 401, (method, headers, answer.text)
    with pytest.raises(BacalhauAPIError) as refused:
        cluster.client(api_key="f" * 40).put_job(JOB, None, force=False)
    assert refused.value.status == 401
    names = {job["Name"] for job in _jobs(cluster)}
    assert JOB["Name"] not in names


def test_the_generated_key_may_manage_jobs_and_read_nodes(cluster: Cluster) -> None:
    """The one user nodeconfig.api_auth creates holds read:job, write:job and read:node
    (pkg/authz/capabilities.go): enough for the provider and infra.ops, nothing more."""
    client = cluster.client()
    job_id = client.put_job({**JOB, "Name": "authenticated-probe"}, None, force=False)
    try:
        assert client.get_job(job_id) is not None
        assert {n["Info"]["NodeID"] for n in client.list_nodes()} >= {
            node.name for node in cluster.compute
        }
    finally:
        stop_if_active(cluster, job_id)
    answer = requests.delete(
        f"{cluster.api_url}/api/v1/orchestrator/nodes/{cluster.compute[0].name}",
        headers={"Authorization": f"Bearer {cluster.api_key}"},
        verify=str(cluster.cert),
        timeout=10,
    )
    assert answer.status_code in (401, 403), "write:node is not granted"


def test_node_with_a_wrong_token_cannot_join(cluster: Cluster) -> None:
    """The orchestrator's NATS server requires Orchestrator.Auth.Token (pkg/nats/transport/
    nats.go: server Authorization); a node presenting another one is refused."""
    node = cluster.add_compute_node("eu-1", "wrong-token-node", token="w" * 40)
    try:
        node.wait_for_log("Authorization Violation")
        assert cluster.node_state(node.name) is None
    finally:
        cluster.remove(node, grace=0.5)


def test_node_that_does_not_trust_the_certificate_cannot_join(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A node verifies the orchestrator against Compute.TLS.CACert (nats.RootCAs in
    pkg/nats/transport/nats.go): a certificate from another CA is refused."""
    other_cert = _certificate(tmp_path)
    node = cluster.add_compute_node("eu-1", "untrusting-node", ca_cert=other_cert)
    try:
        node.wait_for_log("certificate signed by unknown authority")
        assert cluster.node_state(node.name) is None
    finally:
        cluster.remove(node, grace=0.5)


def test_require_tls_would_break_every_connection(cluster: Cluster) -> None:
    """Why nodeconfig never sets Compute.TLS.RequireTLS: v1.9.3 turns it into
    nats.TLSHandshakeFirst() (pkg/nats/transport/nats.go, CreateClient), which Bacalhau's NATS
    server does not enable, so the handshake fails even with the right CA and token."""
    node = cluster.compute_process("eu-1", "require-tls-node")
    node.config["Compute"]["TLS"]["RequireTLS"] = True
    node.start(cluster.binary)
    try:
        node.wait_for_log("first record does not look like a TLS handshake")
        assert cluster.node_state(node.name) is None
    finally:
        node.stop(grace=0.5)


@pytest.mark.parametrize("broken", ["certificate without the listen address", "no CACert"])
def test_orchestrator_must_verify_its_own_nats_server(
    bacalhau_binary: Path, tmp_path: Path, broken: str
) -> None:
    """The orchestrator dials its own NATS server at tls://<Orchestrator.Host>:<port>
    (nats-server's ClientURL, appended in pkg/nats/transport/nats.go NewNATSTransport) and
    adds root CAs only from Orchestrator.TLS.CACert: a certificate that does not name the
    listen address, or a config without CACert, stops it at start (the failure of item 12)."""
    sans = ["IP:198.51.100.7"] if broken.startswith("certificate") else None
    candidate = Cluster(binary=bacalhau_binary, workdir=tmp_path / "orch", regions={}, sans=sans)
    node = candidate.orchestrator_process()
    if broken == "no CACert":
        del node.config["Orchestrator"]["TLS"]["CACert"]
    node.start(bacalhau_binary)
    try:
        assert node.wait_exit() != 0
        log = node.log_path.read_text(errors="replace")
        # Which of the two it prints depends on which connection attempt reports last.
        assert "failed to verify certificate" in log or "no orchestrator available" in log, log
    finally:
        node.stop()


def test_stack_certificate_names_the_address_and_the_listen_host() -> None:
    """The AWS orchestrator listens on 0.0.0.0 and is dialled at its public IP."""
    assert tls.orchestrator_sans("198.51.100.7") == [
        "IP:198.51.100.7",
        "IP:0.0.0.0",
        "IP:127.0.0.1",
    ]
    assert tls.orchestrator_sans(LOOPBACK, listen_host=LOOPBACK) == ["IP:127.0.0.1"]


def _certificate(folder: Path) -> Path:
    cert = folder / "other.pem"
    command = tls.self_signed_command(
        key_path=str(folder / "other-key.pem"), cert_path=str(cert), sans=[f"IP:{LOOPBACK}"]
    )
    subprocess.run(command, check=True, capture_output=True)
    return cert


def _jobs(cluster: Cluster) -> list[dict[str, object]]:
    answer = requests.get(
        cluster.api_url + JOBS_PATH,
        headers={"Authorization": f"Bearer {cluster.api_key}"},
        verify=str(cluster.cert),
        timeout=10,
    )
    answer.raise_for_status()
    items: list[dict[str, object]] = answer.json()["Items"]
    return items
