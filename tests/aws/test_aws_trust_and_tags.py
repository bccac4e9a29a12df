"""Pure pieces behind the AWS glue: the orchestrator CA from SSM, and content-hash image tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra import cloudinit
from infra.bacalhau import provider as job_provider
from infra.bacalhau.trust import CA_PENDING, CaNotPublished, CaSource, ca_file, read_ca
from infra.build_context import context_files, ignore_rules, image_tag, is_ignored

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
SOURCE = CaSource(parameter="/bacalhau-logs-prod/orchestrator-ca", region="us-east-1")


class FakeSsm:
    def __init__(self, *values: str) -> None:
        self.values = list(values)
        self.asked: list[str] = []

    def get_parameter(self, Name: str) -> dict[str, Any]:
        self.asked.append(Name)
        value = self.values.pop(0) if len(self.values) > 1 else self.values[0]
        return {"Parameter": {"Value": value}}


def test_pending_marker_matches_what_cloud_init_writes() -> None:
    assert CA_PENDING == cloudinit.CA_PENDING


def test_read_ca_waits_while_pending_then_answers_the_pem() -> None:
    ssm = FakeSsm(CA_PENDING, CA_PENDING, PEM)
    sleeps: list[float] = []
    assert read_ca(SOURCE, ssm_client=ssm, sleep=sleeps.append) == PEM + "\n"
    assert ssm.asked == [SOURCE.parameter] * 3
    assert len(sleeps) == 2


def test_read_ca_gives_up_after_the_wait() -> None:
    with pytest.raises(CaNotPublished, match="within 0s"):
        read_ca(SOURCE, wait_seconds=0, ssm_client=FakeSsm(CA_PENDING), sleep=lambda _: None)


def test_read_ca_refuses_a_value_that_is_no_certificate() -> None:
    with pytest.raises(CaNotPublished, match="no PEM"):
        read_ca(SOURCE, ssm_client=FakeSsm("garbage"), sleep=lambda _: None)


def test_ca_file_is_named_by_content_and_idempotent(tmp_path: Path) -> None:
    first = ca_file(PEM + "\n", tmp_path)
    assert ca_file(PEM + "\n", tmp_path) == first
    assert Path(first).read_text() == PEM + "\n"


def test_job_provider_verifies_tls_against_the_published_ca(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[CaSource] = []

    def fake_read_ca(source: CaSource) -> str:
        asked.append(source)
        return PEM + "\n"

    monkeypatch.setattr(job_provider, "read_ca", fake_read_ca)
    monkeypatch.setattr(job_provider, "ca_file", lambda pem: str(tmp_path / "ca.pem"))
    props = {"endpoint": "https://198.51.100.7:1234", "ca_source": vars(SOURCE)}
    client = job_provider.BacalhauJobProvider()._client(props)
    assert client.ca_bundle == str(tmp_path / "ca.pem")
    assert asked == [SOURCE]
    plain = job_provider.BacalhauJobProvider()._client({"endpoint": "https://api.example.com"})
    assert plain.ca_bundle is None


def test_dockerignore_rules_follow_docker_semantics() -> None:
    rules = ignore_rules(["# comment", "**/__pycache__", "*.pyc", "Dockerfile", "!keep.pyc", ""])
    assert is_ignored("__pycache__/x.pyc", rules)
    assert is_ignored("a/b/__pycache__/x.py", rules)
    assert is_ignored("x.pyc", rules)
    assert not is_ignored("a/x.pyc", rules)  # '*' stays within one directory
    assert not is_ignored("keep.pyc", rules)
    assert is_ignored("Dockerfile", rules)
    assert not is_ignored("cli.py", rules)


def _context(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "cli.py").write_text("print('hi')\n")
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "cli.pyc").write_bytes(b"\0")
    (tmp_path / ".dockerignore").write_text("**/__pycache__\nDockerfile\n.dockerignore\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    return tmp_path, dockerfile


def test_tag_is_stable_and_ignores_what_docker_does_not_send(tmp_path: Path) -> None:
    context, dockerfile = _context(tmp_path)
    assert context_files(context) == ["pkg/cli.py"]
    tag = image_tag("prod", context, dockerfile, "linux/amd64")
    assert tag.startswith("prod-") and len(tag) == 21
    (context / "pkg" / "__pycache__" / "other.pyc").write_bytes(b"\1")
    assert image_tag("prod", context, dockerfile, "linux/amd64") == tag


@pytest.mark.parametrize("change", ["source", "dockerfile", "platform", "new file"])
def test_tag_changes_with_anything_the_build_reads(tmp_path: Path, change: str) -> None:
    context, dockerfile = _context(tmp_path)
    before = image_tag("prod", context, dockerfile, "linux/amd64")
    platform = "linux/amd64"
    if change == "source":
        (context / "pkg" / "cli.py").write_text("print('bye')\n")
    elif change == "dockerfile":
        dockerfile.write_text("FROM scratch\nUSER 1\n")
    elif change == "platform":
        platform = "linux/arm64"
    else:
        (context / "pkg" / "new.py").write_text("")
    assert image_tag("prod", context, dockerfile, platform) != before


def test_real_contexts_send_only_sources() -> None:
    repo = Path(__file__).resolve().parents[2]
    agent = context_files(repo / "agent")
    assert "cli.py" in agent and "Dockerfile" not in agent
    assert not [name for name in agent if "__pycache__" in name]
    assert "pipeline/metrics.conf" in context_files(repo / "logstash")


BASE = {"LOGSTASH_BASE": "docker.elastic.co/logstash/logstash-oss:8.19.20@sha256:" + "0" * 64}


def test_tag_changes_with_the_build_args_and_not_with_their_order(tmp_path: Path) -> None:
    """ECR tags here are immutable (aws_registry.py): a new pinned base that kept the tag would
    push nothing and leave the old image in place."""
    context, dockerfile = _context(tmp_path)
    plain = image_tag("prod", context, dockerfile, "linux/amd64")
    assert image_tag("prod", context, dockerfile, "linux/amd64", {}) == plain
    pinned = image_tag("prod", context, dockerfile, "linux/amd64", BASE)
    assert pinned != plain
    other = {"LOGSTASH_BASE": BASE["LOGSTASH_BASE"].replace("@sha256:0", "@sha256:1")}
    assert image_tag("prod", context, dockerfile, "linux/amd64", other) not in (plain, pinned)
    both = {"B": "2", "A": "1"}
    assert image_tag("prod", context, dockerfile, "linux/amd64", both) == image_tag(
        "prod", context, dockerfile, "linux/amd64", dict(sorted(both.items()))
    )


def test_a_build_arg_never_digests_like_a_context_file(tmp_path: Path) -> None:
    """Args are hashed after the files as (name, value) pairs; a file of the same name and
    content must still give a different tag."""
    context, dockerfile = _context(tmp_path)
    key, value = "zz", "1"  # sorts after every file, so hashed where the arg would be
    with_arg = image_tag("prod", context, dockerfile, "linux/amd64", {key: value})
    (context / key).write_text(value)
    assert context_files(context)[-1] == key
    assert image_tag("prod", context, dockerfile, "linux/amd64") != with_arg
