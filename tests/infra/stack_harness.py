"""Run the Pulumi program under mocks and record what it declares.

Each run re-executes ``infra/__main__.py`` from scratch with ``runpy`` (as pulumi/examples'
testing-unit-py does), so no state leaks between tests.
"""

from __future__ import annotations

import hashlib
import json
import runpy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

from tests.support.pulumi_mocks import Recorded, declare_recording

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "infra" / "__main__.py"
# Bacalhau reference data sits beside the repository, in the shared folder.
REFERENCE = REPO / "tests" / "reference" / "bacalhau"
PROJECT = "bacalhau-logs"


@dataclass
class StackRun(Recorded):
    pass


def _fake_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """Outputs a real provider would compute, so applies downstream have values to work on."""
    state = dict(args.inputs)
    digest = hashlib.sha256(args.name.encode()).hexdigest()
    if args.typ == "random:index/randomPassword:RandomPassword":
        state["result"] = digest[: int(args.inputs.get("length", 16))]
    elif args.typ == "docker:index/image:Image":
        repository = args.inputs["imageName"].rsplit(":", 1)[0]
        state["repoDigest"] = f"{repository}@sha256:{digest}"
    elif args.typ == "pulumi-python:dynamic/bacalhau:Job":
        state.update(job_id=f"j-{digest[:12]}", version=1, state="Running")
    elif args.typ == "docker:index/remoteImage:RemoteImage":
        state["imageId"] = f"sha256:{digest}"
    return state


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, run: StackRun) -> None:
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.run.record(args)
        return f"{args.name}-id", _fake_state(args)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


def stack_config(path: Path) -> dict[str, Any]:
    """The ``config:`` block of a Pulumi.<stack>.yaml file."""
    return dict(yaml.safe_load(path.read_text())["config"])


def run_program(config: Mapping[str, Any], stack: str = "dev") -> StackRun:
    """Declare the stack for ``config`` (keys like ``bacalhau-logs:regions``) under mocks."""
    run = StackRun()
    pulumi.runtime.set_mocks(RecordingMocks(run), project=PROJECT, stack=stack, preview=False)
    flat = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()
    }
    secret_keys = [
        key for key, value in config.items() if isinstance(value, dict) and "secure" in value
    ]
    pulumi.runtime.set_all_config(flat, secret_keys)

    exported: dict[str, Any] = {}

    def record_export(name: str, value: Any) -> None:
        exported[name] = value

    def declare() -> pulumi.Output[Any]:
        original = pulumi.export
        pulumi.export = record_export  # type: ignore[assignment]
        try:
            runpy.run_path(str(PROGRAM), run_name="__main__")
        finally:
            pulumi.export = original  # type: ignore[assignment]
        return pulumi.Output.from_input(exported).apply(run.outputs.update)

    declare_recording(run, declare)
    return run
