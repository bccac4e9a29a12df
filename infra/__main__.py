"""bacalhau-logs: parse the stack config once, declare the chosen backend, export its outputs."""

from __future__ import annotations

import os

import pulumi

from infra.settings import Backend, load_settings
from infra.stacks.aws import declare_aws
from infra.stacks.local import declare_local

DECLARE = {Backend.DOCKER: declare_local, Backend.AWS: declare_aws}

settings, secrets = load_settings(pulumi.Config(), os.environ)
for key, value in DECLARE[settings.backend](settings, secrets).items():
    pulumi.export(key, value)
