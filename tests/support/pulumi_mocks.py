"""Shared machinery for running Pulumi code under mocks and recording what it declares.

Mocks see a resource's type, name, inputs and provider, but not its options, so a stack
transformation records those (retain-on-delete, parent, depends_on) by resource name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

# How the Pulumi SDK marks a secret value when it serializes resource inputs.
SECRET_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


@dataclass
class Declared:
    type: str
    name: str
    inputs: dict[str, Any]
    provider: str


@dataclass
class Recorded:
    resources: list[Declared] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    retained: dict[str, bool] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    depends_on: dict[str, list[str]] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Declared]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Declared:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name}, got {len(matches)}"
        return matches[0]

    def record(self, args: pulumi.runtime.MockResourceArgs) -> None:
        self.resources.append(Declared(args.typ, args.name, args.inputs, args.provider or ""))


def declare_recording(run: Recorded, declare: Callable[[], Any]) -> None:
    """Run ``declare`` under the mocks already set, recording resource options into ``run``, and
    wait until every registration and every output ``declare`` returns has resolved."""
    active = True

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
    def run_declare() -> Any:
        pulumi.runtime.register_stack_transformation(record_options)
        return declare()

    run_declare()
    active = False


def is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(SECRET_KEY) == SECRET_SIG


def unwrap(value: Any) -> Any:
    """``value`` with every secret wrapper taken off (secrets wrap whole objects around them)."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, Mapping):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value
