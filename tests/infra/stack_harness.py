"""Run the Pulumi program under mocks and record what it declares.

Each run re-executes ``infra/__main__.py`` from scratch with ``runpy`` (as pulumi/examples'
testing-unit-py does), so no state leaks between tests.
"""

from __future__ import annotations

import hashlib
import json
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "infra" / "__main__.py"
# Bacalhau reference data sits beside the repository, in the shared folder.
REFERENCE = REPO.parent / "shared" / "reference" / "bacalhau"
PROJECT = "bacalhau-logs"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


@dataclass
class Declared:
    type: str
    name: str
    inputs: dict[str, Any]
    provider: str


@dataclass
class StackRun:
    resources: list[Declared] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    # Resource options by resource name, seen by a stack transformation (mocks never see them).
    retained: dict[str, bool] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    depends_on: dict[str, list[str]] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Declared]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Declared:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name}, got {len(matches)}"
        return matches[0]


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
        self.run.resources.append(Declared(args.typ, args.name, args.inputs, args.provider))
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

    def record_options(
        args: pulumi.ResourceTransformationArgs,
    ) -> pulumi.ResourceTransformationResult | None:
        # Stack transformations outlive a mocked run; later runs must not write into this one.
        if not active:
            return None
        run.retained[args.name] = bool(args.opts.retain_on_delete)
        parent = args.opts.parent
        run.parents[args.name] = (
            parent.pulumi_resource_name if isinstance(parent, pulumi.Resource) else None
        )
        depends = args.opts.depends_on
        run.depends_on[args.name] = [
            resource.pulumi_resource_name
            for resource in (depends if isinstance(depends, list) else [])
            if isinstance(resource, pulumi.Resource)
        ]
        return None

    @pulumi.runtime.test
    def declare() -> pulumi.Output[Any]:
        pulumi.runtime.register_stack_transformation(record_options)
        original = pulumi.export
        pulumi.export = record_export  # type: ignore[assignment]
        try:
            runpy.run_path(str(PROGRAM), run_name="__main__")
        finally:
            pulumi.export = original  # type: ignore[assignment]
        return pulumi.Output.from_input(exported).apply(run.outputs.update)

    active = True
    declare()
    active = False
    return run


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get("4dabf18193072939515e22adb298388d") == SECRET_SIG
