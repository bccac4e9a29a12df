"""Typed stack settings, parsed once from Pulumi config before any resource is declared.

``parse_settings`` is pure: it takes the raw config values and answers a frozen ``Settings`` or
raises ``ConfigError`` listing every bad key with its full path (``bacalhau-logs:regions[1].nodes``)
and what is allowed. ``load_settings`` is the only place that reads ``pulumi.Config``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

import pulumi
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from infra.config_model import StrictModel
from infra.settings_aws import AwsSettings
from infra.versions import BACALHAU_VERSION, BACALHAU_VERSION_PATTERN

PROJECT = "bacalhau-logs"

# Region names become parts of container, bucket and DNS names, so they must be DNS-label safe.
_REGION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,24}[a-z0-9]$")
_AWS_REGION_NAME = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")

TOKEN_KEY = "orchestratorToken"
API_KEY_KEY = "orchestratorApiKey"
API_KEY_ENV = "BACALHAU_API_KEY"


class ConfigError(ValueError):
    """Stack config that cannot be deployed; the message names every bad key and what is allowed."""


class Backend(StrEnum):
    DOCKER = "docker"
    AWS = "aws"


class OrchestratorMode(StrEnum):
    SELF_HOSTED = "self-hosted"
    EXTERNAL = "external"


class RegionSettings(StrictModel):
    name: str
    nodes: int = Field(ge=1, le=50)
    instance_type: str = "t3.medium"
    vpc_cidr: str = "10.42.0.0/16"

    @field_validator("name")
    @classmethod
    def _dns_safe(cls, value: str) -> str:
        if not _REGION_NAME.match(value):
            raise ValueError(
                "must be 2-26 lowercase letters, digits or '-', starting with a letter"
            )
        return value


class OrchestratorSettings(StrictModel):
    mode: OrchestratorMode = OrchestratorMode.SELF_HOSTED
    nats_url: str | None = None
    api_url: str | None = None

    @model_validator(mode="after")
    def _external_needs_endpoints(self) -> Self:
        if self.mode is OrchestratorMode.EXTERNAL:
            if not self.nats_url or not re.match(r"^(nats|tls)://[^\s/]+$", self.nats_url):
                raise ValueError("natsUrl: external mode needs natsUrl like nats://host:4222")
            if not self.api_url or not re.match(r"^https?://[^\s]+$", self.api_url):
                raise ValueError("apiUrl: external mode needs apiUrl like https://host:1234")
        elif self.nats_url or self.api_url:
            raise ValueError("natsUrl/apiUrl are only allowed with mode: external")
        return self


class GeneratorSettings(StrictModel):
    """The demo log generator daemon job: off unless a stack asks for synthetic traffic."""

    enabled: bool = False
    rate: float = Field(default=20.0, gt=0, le=10_000)


class JobSettings(StrictModel):
    canary_region: str | None = None
    aggregate_duration_seconds: int = Field(default=60, ge=5, le=3600)
    generator: GeneratorSettings = GeneratorSettings()


class ArchiveSettings(StrictModel):
    prefix: str = "logs/"
    # Archives outlive the stack unless a stack opts in: compliance data is not disposable.
    destroy_with_stack: bool = False
    infrequent_access_after_days: int = Field(default=30, ge=30)
    glacier_after_days: int = Field(default=90, ge=1)
    expire_after_days: int = Field(default=365, ge=1)
    object_lock_days: int | None = Field(default=None, ge=1)

    @field_validator("prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if not re.match(r"^([a-z0-9][a-z0-9._-]*/)+$", value):
            raise ValueError("must be lowercase path segments ending with '/', like 'logs/'")
        return value

    @model_validator(mode="after")
    def _lifecycle_in_order(self) -> Self:
        ia, glacier, expire = (
            self.infrequent_access_after_days,
            self.glacier_after_days,
            self.expire_after_days,
        )
        if not ia < glacier < expire:
            raise ValueError(
                "lifecycle days must grow: infrequentAccessAfterDays < glacierAfterDays "
                f"< expireAfterDays (got {ia}, {glacier}, {expire})"
            )
        return self


class VersionSettings(StrictModel):
    bacalhau: str = BACALHAU_VERSION

    @field_validator("bacalhau")
    @classmethod
    def _supported_bacalhau(cls, value: str) -> str:
        if not BACALHAU_VERSION_PATTERN.match(value):
            raise ValueError("must be a Bacalhau v1.9.x release tag, like 'v1.9.3'")
        return value


class Settings(StrictModel):
    """Everything a stack deploys, validated; components take this (or parts), never config."""

    project: str = PROJECT
    stack: str
    backend: Backend
    regions: tuple[RegionSettings, ...]
    orchestrator: OrchestratorSettings = OrchestratorSettings()
    jobs: JobSettings = JobSettings()
    archive: ArchiveSettings = ArchiveSettings()
    versions: VersionSettings = VersionSettings()
    aws: AwsSettings = AwsSettings()

    @field_validator("regions")
    @classmethod
    def _at_least_one(cls, value: tuple[RegionSettings, ...]) -> tuple[RegionSettings, ...]:
        if not value:
            raise ValueError("at least one region is required, like [{name: us-east-1, nodes: 2}]")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        names = [region.name for region in self.regions]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"regions: duplicate region name(s) {', '.join(duplicates)}")
        if self.backend is Backend.AWS:
            bad = [name for name in names if not _AWS_REGION_NAME.match(name)]
            if bad:
                raise ValueError(
                    f"regions: {', '.join(bad)} are not AWS region names (like us-east-1)"
                )
            if self.aws.home_region is not None and self.aws.home_region not in names:
                raise ValueError(f"aws.homeRegion: '{self.aws.home_region}' is not in regions")
        canary = self.jobs.canary_region
        if canary is not None and canary not in names:
            raise ValueError(f"jobs.canaryRegion: '{canary}' is not one of {', '.join(names)}")
        return self

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(region.name for region in self.regions)

    @property
    def home_region(self) -> str:
        """Where single-instance services (search, a self-hosted orchestrator) live."""
        return self.aws.home_region or self.regions[0].name


# The top-level config keys, in this project's namespace, that make up Settings.
_OBJECT_KEYS = ("regions", "orchestrator", "jobs", "archive", "versions", "aws")


def parse_settings(
    raw: Mapping[str, Any],
    *,
    stack: str,
    secrets_present: frozenset[str] = frozenset(),
    env_api_key: bool = False,
) -> Settings:
    """Validate raw config values (as Pulumi stores them) into Settings, or raise ConfigError."""
    data: dict[str, Any] = {"stack": stack}
    problems: list[str] = []
    if raw.get("backend") is None:
        problems.append(f"{PROJECT}:backend: required; one of docker, aws")
    for key, value in raw.items():
        if value is None:
            continue
        if key in _OBJECT_KEYS and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                problems.append(f"{PROJECT}:{key}: not valid YAML/JSON ({error.msg})")
                continue
        data[key] = value
    if "regions" not in data:
        problems.append(f"{PROJECT}:regions: required; a list of {{name, nodes}}")
    if problems:
        raise ConfigError(_format(problems))
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format(_describe(error))) from None
    _check_secrets(settings, secrets_present, env_api_key)
    return settings


def _check_secrets(settings: Settings, present: frozenset[str], env_api_key: bool) -> None:
    if settings.orchestrator.mode is not OrchestratorMode.EXTERNAL:
        return
    problems = []
    if TOKEN_KEY not in present:
        problems.append(
            f"{PROJECT}:{TOKEN_KEY}: external mode needs the orchestrator's node token "
            f"as secret config (pulumi config set --secret {TOKEN_KEY} ...)"
        )
    if API_KEY_KEY not in present and not env_api_key:
        problems.append(
            f"{PROJECT}:{API_KEY_KEY}: external mode needs an API key as secret config "
            f"(pulumi config set --secret {API_KEY_KEY} ...) or in ${API_KEY_ENV}"
        )
    if problems:
        raise ConfigError(_format(problems))


def _describe(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        # Cross-field validators name the key they blame as "key.path: message".
        blamed = re.match(r"^([a-zA-Z][\w.]*): (.*)$", message, re.DOTALL)
        if item["type"] == "value_error" and blamed:
            loc = (*loc, *blamed.group(1).split("."))
            message = blamed.group(2)
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required"
        elif not isinstance(item.get("input"), dict | list | tuple | type(None)):
            message = f"{message} (got {item['input']!r})"
        problems.append(f"{_key_path(loc)}: {message}")
    return problems


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = PROJECT
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += (":" if index == 0 else ".") + to_camel(part)
    return path


def _format(problems: list[str]) -> str:
    return "invalid stack config:\n  " + "\n  ".join(problems)


@dataclass(frozen=True)
class Secrets:
    """Secret config values, kept as Pulumi secrets so they are encrypted wherever they flow."""

    orchestrator_token: pulumi.Output[str] | None
    orchestrator_api_key: pulumi.Output[str] | None


def load_settings(config: pulumi.Config, env: Mapping[str, str]) -> tuple[Settings, Secrets]:
    """Read this project's config once; the only function that touches pulumi.Config."""
    raw = {key: config.get(key) for key in ("backend", *_OBJECT_KEYS)}
    secrets = Secrets(
        orchestrator_token=config.get_secret(TOKEN_KEY),
        orchestrator_api_key=config.get_secret(API_KEY_KEY),
    )
    present = frozenset(
        key
        for key, value in (
            (TOKEN_KEY, secrets.orchestrator_token),
            (API_KEY_KEY, secrets.orchestrator_api_key),
        )
        if value is not None
    )
    settings = parse_settings(
        raw,
        stack=pulumi.get_stack(),
        secrets_present=present,
        env_api_key=bool(env.get(API_KEY_ENV)),
    )
    return settings, secrets
