"""bacalhau-logs: parse the stack config once, declare the chosen backend, export its outputs."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pulumi

from infra.settings import Backend, Secrets, Settings, load_settings


def _backend(backend: Backend) -> Callable[[Settings, Secrets], dict[str, Any]]:
    # Imported on demand: a local stack needs none of the AWS backend's modules, and vice versa.
    if backend is Backend.AWS:
        from infra.stacks.aws import declare_aws

        return declare_aws
    from infra.stacks.local import declare_local

    return declare_local


settings, secrets = load_settings(pulumi.Config(), os.environ)
for key, value in _backend(settings.backend)(settings, secrets).items():
    pulumi.export(key, value)
