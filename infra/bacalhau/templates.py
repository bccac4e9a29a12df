"""Render the job specs in ``jobs/`` with stack values.

The files use Go template syntax (``{{.bucket}}``) so they stay runnable by hand with
``bacalhau job run FILE --template-vars ...``. Here the YAML is parsed first and variables are
substituted inside string scalars only, so a value can never add keys, lists or documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

_VARIABLE = re.compile(r"\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_LEFTOVER = re.compile(r"\{\{.*?\}\}")


class TemplateError(ValueError):
    """A job file that cannot be rendered; the message names the file and the variable."""


def render_job_file(path: Path, variables: Mapping[str, object]) -> dict[str, Any]:
    """The job in ``path`` with every ``{{.name}}`` replaced by ``variables[name]``."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise TemplateError(f"{path}: expected a job mapping at the top level")
    values = {name: str(value) for name, value in variables.items()}
    rendered: dict[str, Any] = _render(document, values, path)
    return rendered


def template_variables(path: Path) -> set[str]:
    """The variable names a job file uses."""
    return set(_VARIABLE.findall(path.read_text(encoding="utf-8")))


def _render(node: Any, values: Mapping[str, str], path: Path) -> Any:
    if isinstance(node, dict):
        return {key: _render(value, values, path) for key, value in node.items()}
    if isinstance(node, list):
        return [_render(item, values, path) for item in node]
    if isinstance(node, str):
        return _substitute(node, values, path)
    return node


def _substitute(text: str, values: Mapping[str, str], path: Path) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise TemplateError(f"{path}: template variable '{name}' has no value")
        return values[name]

    # One pass over the original text: a value that itself looks like {{.x}} is never expanded.
    pieces: list[str] = []
    position = 0
    for match in _VARIABLE.finditer(text):
        leftover = _LEFTOVER.search(text, position, match.start())
        if leftover:
            raise TemplateError(f"{path}: unsupported template expression {leftover.group(0)!r}")
        pieces.append(text[position : match.start()])
        pieces.append(replace(match))
        position = match.end()
    leftover = _LEFTOVER.search(text, position)
    if leftover:
        raise TemplateError(f"{path}: unsupported template expression {leftover.group(0)!r}")
    pieces.append(text[position:])
    return "".join(pieces)
