"""Validate payloads against Bacalhau's published OpenAPI (swagger 2.0) spec with jsonschema.

One documented deviation: the Go types behind some integer enums (Network, JobStateType,
ExecutionStateType, ...) implement encoding.TextMarshaler, so the orchestrator reads and writes
their names ("Host", "Running") while the generated spec lists only the numbers. Those enums
accept both here, as does the real API. The same holds for two node state structs that marshal
as a single upper-case string.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema

_TEXT_MARSHALED_STRUCTS = {
    "models.NodeMembershipState": ["PENDING", "APPROVED", "REJECTED"],
    "models.NodeConnectionState": ["CONNECTED", "DISCONNECTED"],
}


class SwaggerSpec:
    def __init__(self, path: Path) -> None:
        self.document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))

    @cached_property
    def _definitions(self) -> dict[str, Any]:
        definitions = copy.deepcopy(self.document["definitions"])
        for name, schema in definitions.items():
            names = schema.get("x-enum-varnames")
            if schema.get("type") == "integer" and names:
                definitions[name] = {
                    "anyOf": [
                        {"type": "integer", "enum": schema["enum"]},
                        {"type": "string", "enum": _strip_common_prefix(names)},
                    ]
                }
        for name, values in _TEXT_MARSHALED_STRUCTS.items():
            definitions[name] = {"anyOf": [definitions[name], {"type": "string", "enum": values}]}
        return definitions

    def errors(self, definition: str, payload: Any) -> list[str]:
        """Every way ``payload`` breaks ``#/definitions/<definition>``."""
        schema = {"$ref": f"#/definitions/{definition}", "definitions": self._definitions}
        validator = jsonschema.Draft4Validator(schema)
        return [
            f"{definition} at /{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(payload)
        ]

    def operation(self, method: str, template: str) -> dict[str, Any]:
        operation: dict[str, Any] = self.document["paths"][template][method.lower()]
        return operation

    def query_errors(self, method: str, template: str, query: Mapping[str, list[str]]) -> list[str]:
        """Unknown, repeated, missing-required or mistyped query parameters."""
        declared = {
            p["name"]: p
            for p in self.operation(method, template)["parameters"]
            if p["in"] == "query"
        }
        errors = [f"unknown query parameter {name!r}" for name in query if name not in declared]
        for name, parameter in declared.items():
            values = query.get(name)
            if not values:
                if parameter.get("required"):
                    errors.append(f"missing required query parameter {name!r}")
                continue
            if len(values) > 1:
                errors.append(f"query parameter {name!r} given {len(values)} times")
            if not _fits(parameter["type"], values[0]):
                errors.append(f"query parameter {name!r}={values[0]!r} is not {parameter['type']}")
        return errors

    def body_definition(self, method: str, template: str) -> str | None:
        for parameter in self.operation(method, template)["parameters"]:
            if parameter["in"] == "body":
                ref: str = parameter["schema"]["$ref"]
                return ref.rsplit("/", 1)[1]
        return None

    def response_definition(self, method: str, template: str) -> str:
        ref: str = self.operation(method, template)["responses"]["200"]["schema"]["$ref"]
        return ref.rsplit("/", 1)[1]


def _fits(kind: str, value: str) -> bool:
    if kind == "integer":
        return value.lstrip("-").isdigit()
    if kind == "boolean":
        return value in ("true", "false")
    return True


def _strip_common_prefix(names: list[str]) -> list[str]:
    """Go's stringer trims the type prefix: NetworkHost -> Host, nodeTypeCompute -> Compute."""
    lowered = [n.lower() for n in names]
    prefix = 0
    while all(len(n) > prefix and n[prefix] == lowered[0][prefix] for n in lowered):
        prefix += 1
    return [n[prefix:] for n in names]
