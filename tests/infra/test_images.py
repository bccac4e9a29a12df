"""The images the stack builds, and how a stack pins the Logstash base by digest."""

from __future__ import annotations

import re

from infra.images import LOGSTASH_BASE_ARG, stack_images
from infra.paths import LOGSTASH_DIR
from infra.settings import VersionSettings
from infra.versions import LOGSTASH_BASE_IMAGE

# Not a real digest of anything: the repository has no verified one (see logstash/Dockerfile).
DIGEST = "sha256:" + "0123456789abcdef" * 4


def instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instruction lines, comments and blank lines dropped."""
    return [line for line in dockerfile.splitlines() if line and not line.startswith("#")]


def test_the_dockerfile_takes_its_base_from_the_build_arg_defaulting_to_the_pinned_tag() -> None:
    """Only an ARG declared before the first FROM can be used in FROM ("Understand how ARG and
    FROM interact", docs.docker.com/reference/dockerfile/); its default is the one place besides
    infra/versions.py that names the tag, so the two must agree."""
    lines = instructions((LOGSTASH_DIR / "Dockerfile").read_text())
    assert lines[:2] == [
        f"ARG {LOGSTASH_BASE_ARG}={LOGSTASH_BASE_IMAGE}",
        f"FROM ${{{LOGSTASH_BASE_ARG}}}",
    ]
    assert len([line for line in lines if line.startswith("FROM ")]) == 1


def test_without_a_digest_no_image_gets_build_args() -> None:
    images = {image.name: image for image in stack_images(VersionSettings())}
    assert set(images) == {"agent", "logstash"}
    assert all(dict(image.build_args) == {} for image in images.values())


def test_a_digest_pins_the_logstash_base_and_nothing_else() -> None:
    images = {
        image.name: image for image in stack_images(VersionSettings(logstash_base_digest=DIGEST))
    }
    assert dict(images["logstash"].build_args) == {
        LOGSTASH_BASE_ARG: f"{LOGSTASH_BASE_IMAGE}@{DIGEST}"
    }
    assert dict(images["agent"].build_args) == {}
    # A reference Docker can pull: repository:tag@sha256:<64 hex>.
    assert re.fullmatch(
        r"[a-z0-9./-]+/logstash-oss:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}",
        images["logstash"].build_args[LOGSTASH_BASE_ARG],
    )
