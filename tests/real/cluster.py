"""A real Bacalhau cluster as local processes: one orchestrator and compute nodes in regions.

Every node runs the release the stack pins (built by scripts/build-bacalhau) with the node config
the stacks render (``infra.nodeconfig``), a certificate made the way the AWS orchestrator makes
it (``infra.tls``), a generated NATS token and API key. Everything listens on 127.0.0.1 only.
Nothing here sleeps for a fixed time: readiness is polled with a deadline.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

from infra import nodeconfig, tls
from infra.bacalhau.client import BacalhauClient
from infra.bacalhau.states import TERMINAL_JOB_STATES, job_state
from infra.versions import BACALHAU_VERSION

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-bacalhau"
LOOPBACK = "127.0.0.1"
ENV_NAME = "test"
START_TIMEOUT = 60.0

T = TypeVar("T")

# As the dev stack's nodes carry them (local_region.py): with AWS credentials in its environment
# a v1.9.3 node offers the s3 input source and publisher (pkg/s3/client.go IsInstalled checks
# HasValidCredentials). Dummy values: nothing here reaches S3.
NODE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test-access-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret-key",
    "AWS_REGION": "us-east-1",
}


class ClusterError(RuntimeError):
    """The cluster did not come up; the message carries the nodes' log tails."""


def binary_path() -> Path:
    """The pinned release's binary, built on first use by the test command's build script."""
    return REPO / ".cache" / "bacalhau" / BACALHAU_VERSION / "bacalhau"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float, logs: Callable[[], str]
) -> T:
    """Poll ``probe`` until it returns a value, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs()}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@dataclass
class NodeProcess:
    name: str
    config: dict[str, Any]
    workdir: Path
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "node.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"

    def start(self, binary: Path) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(nodeconfig.to_yaml(self.config))
        self.config_path.chmod(0o600)
        log = self.log_path.open("ab")
        # HOME inside the workdir: the client and node write nothing to the real home folder.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "BACALHAU_DIR": str(self.workdir / "repo"),
            **self.env,
        }
        self.process = subprocess.Popen(
            [str(binary), "serve", "--config", str(self.config_path), "--name", self.name],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (a node refused by the orchestrator
        spends its shutdown waiting for a connection that never comes)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        self.process = None

    def wait_for_log(self, text: str, timeout: float = 30.0) -> str:
        """The first log line containing ``text``, waiting for it at most ``timeout`` seconds."""

        def find() -> str | None:
            if not self.log_path.exists():
                return None
            with self.log_path.open(errors="replace") as log:
                return next((line for line in log if text in line), None)

        return wait_for(f"{text!r} in {self.name}'s log", find, timeout, self.log_tail)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """The exit code of a node expected to stop by itself."""
        assert self.process is not None, f"{self.name} was never started"
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            message = f"{self.name} still runs after {timeout:.0f}s\n{self.log_tail()}"
            raise ClusterError(message) from None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return f"--- {self.name}: no log\n"
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} ({self.log_path})\n" + "\n".join(tail) + "\n"


@dataclass
class Cluster:
    """A running orchestrator (NATS and API over TLS, API key auth) and compute nodes."""

    binary: Path
    workdir: Path
    regions: Mapping[str, int]
    token: str = field(default_factory=lambda: secrets.token_hex(20))
    api_key: str = field(default_factory=lambda: secrets.token_hex(20))
    nats_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    # subjectAltNames of the orchestrator's certificate; None: what the AWS stack gives it.
    sans: Sequence[str] | None = None
    orchestrator: NodeProcess | None = None
    compute: list[NodeProcess] = field(default_factory=list)

    @property
    def cert(self) -> Path:
        return self.workdir / "tls" / "server.pem"

    @property
    def key(self) -> Path:
        return self.workdir / "tls" / "server-key.pem"

    @property
    def api_url(self) -> str:
        return f"https://{LOOPBACK}:{self.api_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://{LOOPBACK}:{self.nats_port}"

    def nodes(self) -> list[NodeProcess]:
        return [*([self.orchestrator] if self.orchestrator else []), *self.compute]

    def client(self, api_key: str | None = None, retry_budget: float = 10.0) -> BacalhauClient:
        return BacalhauClient(
            endpoint=self.api_url,
            api_key=self.api_key if api_key is None else api_key,
            retry_budget=retry_budget,
            ca_bundle=str(self.cert),
        )

    def logs(self) -> str:
        return "".join(node.log_tail() for node in self.nodes())

    def start(self) -> None:
        self.start_orchestrator()
        wait_for("the orchestrator's API", self._api_alive, START_TIMEOUT, self.logs)
        for region, count in self.regions.items():
            for index in range(1, count + 1):
                self.add_compute_node(region, f"{ENV_NAME}-{region}-node-{index}")
        self.wait_connected([node.name for node in self.compute])

    def start_orchestrator(self) -> NodeProcess:
        """Start the orchestrator process without waiting for it."""
        self.orchestrator = self.orchestrator_process()
        self.orchestrator.start(self.binary)
        return self.orchestrator

    def orchestrator_process(self) -> NodeProcess:
        """The orchestrator with the config the stacks render (not started), and its certificate."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._make_certificate()
        return NodeProcess(
            name="orchestrator",
            workdir=self.workdir / "orchestrator",
            config=nodeconfig.orchestrator_config(
                token=self.token,
                api_key=self.api_key,
                labels={"role": "orchestrator", "env": ENV_NAME},
                tls=nodeconfig.ServerTls(
                    cert_file=str(self.cert), key_file=str(self.key), ca_file=str(self.cert)
                ),
                api_tls=True,
                host=LOOPBACK,
                nats_port=self.nats_port,
                api_port=self.api_port,
                data_dir=str(self.workdir / "orchestrator" / "data"),
            ),
        )

    def add_compute_node(
        self,
        region: str,
        name: str,
        *,
        token: str | None = None,
        ca_cert: Path | None = None,
        wait: bool = False,
    ) -> NodeProcess:
        node = self.compute_process(region, name, token=token, ca_cert=ca_cert)
        node.start(self.binary)
        self.compute.append(node)
        if wait:
            self.wait_connected([name])
        return node

    def compute_process(
        self, region: str, name: str, *, token: str | None = None, ca_cert: Path | None = None
    ) -> NodeProcess:
        """A compute node with the config the stacks render (not started)."""
        labels = {"region": region, "env": ENV_NAME, "host": name}
        workdir = self.workdir / name
        return NodeProcess(
            name=name,
            workdir=workdir,
            labels=labels,
            env=NODE_AWS_ENV,
            config=nodeconfig.compute_config(
                orchestrators=[self.nats_url],
                token=self.token if token is None else token,
                labels=labels,
                tls_ca_cert=str(self.cert if ca_cert is None else ca_cert),
                data_dir=str(workdir / "data"),
                api_port=free_port(),
            ),
        )

    def wait_connected(self, names: Sequence[str], timeout: float = START_TIMEOUT) -> None:
        """Until every named node is CONNECTED and carries the labels it was started with."""
        expected = {node.name: node.labels for node in self.compute if node.name in names}

        def connected() -> bool | None:
            states = {n["Info"]["NodeID"]: n for n in self.client().list_nodes()}
            for name, labels in expected.items():
                state = states.get(name)
                if state is None or state.get("Connection") != "CONNECTED":
                    return None
                if not labels.items() <= (state["Info"].get("Labels") or {}).items():
                    return None
            return True

        wait_for(f"nodes {sorted(expected)} to connect", connected, timeout, self.logs)

    def node_state(self, name: str) -> dict[str, Any] | None:
        for state in self.client().list_nodes():
            if state["Info"]["NodeID"] == name:
                return state
        return None

    def remove(self, node: NodeProcess, grace: float = 15.0) -> None:
        """Stop a compute node a test added and forget it."""
        node.stop(grace)
        self.compute.remove(node)

    def stop(self) -> None:
        for node in reversed(self.nodes()):
            node.stop()

    def _make_certificate(self) -> None:
        self.cert.parent.mkdir(parents=True, exist_ok=True)
        command = tls.self_signed_command(
            key_path=str(self.key),
            cert_path=str(self.cert),
            sans=self.sans or tls.orchestrator_sans(LOOPBACK, listen_host=LOOPBACK),
        )
        subprocess.run(command, check=True, capture_output=True)

    def _api_alive(self) -> bool | None:
        if self.orchestrator is not None and not self.orchestrator.running():
            raise ClusterError(f"the orchestrator exited\n{self.logs()}")
        try:
            answer = requests.get(
                f"{self.api_url}/api/v1/agent/alive", verify=str(self.cert), timeout=2
            )
        except requests.RequestException:
            return None
        return True if answer.ok else None


def stop_if_active(cluster: Cluster, job_id: str) -> None:
    """Stop a job a test submitted; v1.9.3 answers 500 to stopping one already terminal
    (pkg/orchestrator/endpoint.go StopJob: "cannot transition"), so look first."""
    client = cluster.client()
    live = client.get_job(job_id)
    if live is not None and job_state(live) not in TERMINAL_JOB_STATES:
        client.stop_job(job_id, reason="test done")
