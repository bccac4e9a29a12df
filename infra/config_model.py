"""The base of every settings model: camelCase keys in YAML, snake_case in code, no unknown keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class StrictModel(BaseModel):
    # Unknown keys are typos in stack config, so they are errors rather than silently ignored.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )
