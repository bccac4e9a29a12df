"""The images this stack builds itself, where their build contexts are, and their build args."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra.paths import AGENT_DIR, LOGSTASH_DIR
from infra.settings import VersionSettings
from infra.versions import LOGSTASH_BASE_IMAGE

# The build argument logstash/Dockerfile takes its base image from (`FROM ${LOGSTASH_BASE}`).
LOGSTASH_BASE_ARG = "LOGSTASH_BASE"


@dataclass(frozen=True)
class BuiltImage:
    name: str
    context: Path
    dockerfile: Path
    # Docker `--build-arg`s; they change what is built, so they are part of the image tag too
    # (infra.build_context.image_tag).
    build_args: Mapping[str, str] = field(default_factory=dict)


def logstash_build_args(versions: VersionSettings) -> dict[str, str]:
    """``LOGSTASH_BASE=<tag>@sha256:..`` when the stack pins the base's digest; else nothing, so
    the Dockerfile's tag default applies. Docker resolves ``name:tag@digest`` by the digest."""
    digest = versions.logstash_base_digest
    return {LOGSTASH_BASE_ARG: f"{LOGSTASH_BASE_IMAGE}@{digest}"} if digest else {}


def stack_images(versions: VersionSettings) -> tuple[BuiltImage, ...]:
    """The agent and Logstash images a stack builds with ``versions``."""
    # The agent's Dockerfile copies its own directory (see agent/.dockerignore), so that is the
    # context; the Logstash image likewise builds from logstash/.
    return (
        BuiltImage("agent", context=AGENT_DIR, dockerfile=AGENT_DIR / "Dockerfile"),
        BuiltImage(
            "logstash",
            context=LOGSTASH_DIR,
            dockerfile=LOGSTASH_DIR / "Dockerfile",
            build_args=logstash_build_args(versions),
        ),
    )
