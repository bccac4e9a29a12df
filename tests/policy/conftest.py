"""Build pulumi-policy's ResourceValidationArgs and collect violations for the rule tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs

Validate = Callable[[Any, Callable[[str, str | None], None]], None]


def resource_args(resource_type: str, props: Mapping[str, Any]) -> ResourceValidationArgs:
    options = PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )
    name = "subject"
    urn = f"urn:pulumi:test::bacalhau-logs::{resource_type}::{name}"
    return ResourceValidationArgs(resource_type, props, urn, name, options, None)


@pytest.fixture
def violations() -> Callable[[Validate, str, Mapping[str, Any]], list[str]]:
    def run(validate: Validate, resource_type: str, props: Mapping[str, Any]) -> list[str]:
        found: list[str] = []
        validate(
            resource_args(resource_type, props), lambda message, urn=None: found.append(message)
        )
        return found

    return run
