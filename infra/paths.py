"""Where the repository's non-Python parts live, independent of the directory Pulumi runs in."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
JOBS_DIR = REPO_ROOT / "jobs"
AGENT_DIR = REPO_ROOT / "agent"
LOGSTASH_DIR = REPO_ROOT / "logstash"
