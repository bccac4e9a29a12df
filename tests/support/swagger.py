"""Validate payloads against Bacalhau's published OpenAPI (swagger 2.0) spec with jsonschema.

Documented deviations, where the generated spec and the v1.9.3 handlers disagree:
- Some Go types behind integer enums (Network, JobStateType, ...) implement
  encoding.TextMarshaler, so the orchestrator reads and writes their names ("Host", "Running")
  while the spec lists only the numbers; those enums accept both here. models.ExecutionStateType
  does not (pkg/models/execution.go): executions carry numbers, which the numbers accept. Two node
  state structs marshal as a single upper-case string.
- The handlers bind query parameters the spec omits (pkg/publicapi/apimodels/base_requests.go):
  ``namespace`` on GET /jobs/{id} (a job Name is looked up in it), ``job_version`` and
  ``all_job_versions`` on the executions list (BaseVersionedListRequest).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema

# Query parameters the v1.9.3 handlers bind but the generated spec leaves out.
_UNLISTED_QUERY_PARAMETERS = {
    ("GET", "/api/v1/orchestrator/jobs/{id}"): [{"name": "namespace", "type": "string"}],
    ("GET", "/api/v1/orchestrator/jobs/{id}/executions"): [
        {"name": "job_version", "type": "integer"},
        {"name": "all_job_versions", "type": "boolean"},
    ],
}
_TEXT_MARSHALED_STRUCTS = {
    "models.NodeMembershipState": ["PENDING", "APPROVED", "REJECTED"],
    "models.NodeConnectionState": ["CONNECTED", "DISCONNECTED"],
}


_NOT_ENFORCED_REQUIRED = frozenset(
    {("GET", "/api/v1/orchestrator/jobs/{id}/executions", "order_by")}
)


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
        return [
            f"{definition} at /{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in self._validator(definition).iter_errors(payload)
        ]

    def go_decode_errors(self, definition: str, payload: Any) -> list[str]:
        """What the orchestrator's JSON binder answers for numbers Go cannot decode into an
        integer field, such as ``Count: 1.0`` (json.Unmarshal refuses a fraction or exponent for
        an int; echo reports it as "Unmarshal type error"). Draft 4 types ``1.0`` as no integer,
        as Go does. Go names the field by its path without list indices."""
        refused = []
        for error in self._validator(definition).iter_errors(payload):
            if (
                error.validator == "type"
                and error.validator_value == "integer"
                and isinstance(error.instance, float)
            ):
                path = ".".join(str(p) for p in error.absolute_path if isinstance(p, str))
                refused.append(
                    "code=400, message=Unmarshal type error: expected=int, "
                    f"got=number {error.instance!r}, field={path}"
                )
        return refused

    def _validator(self, definition: str) -> jsonschema.Draft4Validator:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": self._definitions}
        return jsonschema.Draft4Validator(schema)

    def operation(self, method: str, template: str) -> dict[str, Any]:
        operation: dict[str, Any] = self.document["paths"][template][method.lower()]
        return operation

    def query_errors(self, method: str, template: str, query: Mapping[str, list[str]]) -> list[str]:
        """Unknown, repeated, missing-required or mistyped query parameters."""
        parameters = [
            *(p for p in self.operation(method, template)["parameters"] if p["in"] == "query"),
            *_UNLISTED_QUERY_PARAMETERS.get((method.upper(), template), []),
        ]
        declared = {p["name"]: p for p in parameters}
        errors = [f"unknown query parameter {name!r}" for name in query if name not in declared]
        for name, parameter in declared.items():
            values = query.get(name)
            if not values:
                # The spec marks executions' order_by required; v1.9.3 answers 200 without it
                # (tests/real/test_standin_parity.py sends the same request to both).
                if parameter.get("required") and (method.upper(), template, name) not in (
                    _NOT_ENFORCED_REQUIRED
                ):
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
