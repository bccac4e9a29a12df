"""The images this stack builds itself, and where their build contexts are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.paths import AGENT_DIR, LOGSTASH_DIR


@dataclass(frozen=True)
class BuiltImage:
    name: str
    context: Path
    dockerfile: Path


# The agent's Dockerfile copies its own directory (see agent/.dockerignore), so that is the
# context; the Logstash image likewise builds from logstash/.
STACK_IMAGES = (
    BuiltImage("agent", context=AGENT_DIR, dockerfile=AGENT_DIR / "Dockerfile"),
    BuiltImage("logstash", context=LOGSTASH_DIR, dockerfile=LOGSTASH_DIR / "Dockerfile"),
)
