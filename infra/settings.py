"""Typed stack settings, parsed once from Pulumi config before any resource is declared.

``parse_settings`` is pure: it takes the raw config values and answers a frozen ``Settings`` or
raises ``ConfigError`` listing every bad key with its full path (``bacalhau-logs:regions[1].nodes``)
and what is allowed. ``load_settings`` is the only place that reads ``pulumi.Config``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import pulumi
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from infra import capacity, naming
from infra.config_model import StrictModel
from infra.settings_aws import AWS_REGIONS, AwsSettings, SearchPlacement, vpc_cidr_problems
from infra.versions import BACALHAU_VERSION, BACALHAU_VERSION_PATTERN, LOGSTASH_BASE_IMAGE

PROJECT = "bacalhau-logs"

# Every pattern is used with fullmatch: "$" would also accept a trailing newline.
# Region and stack names become parts of container, bucket and DNS names: DNS-label safe.
_REGION_NAME = re.compile(r"[a-z][a-z0-9-]{0,24}[a-z0-9]")
STACK_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_NATS_URL = re.compile(r"(nats|tls)://[^\s/]+")
_API_URL = re.compile(r"https?://[^\s]+")
_ARCHIVE_PREFIX = re.compile(r"([a-z0-9][a-z0-9._-]*/)+")
_EC2_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
# The digest part of an `image@sha256:<hex>` reference; only the sha256 form is accepted.
_IMAGE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

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
    # AWS only. The smallest type that holds the daemons, the compactor and a query
    # (infra/capacity.py); 2-vCPU types cannot.
    instance_type: str = "m6i.xlarge"
    # AWS only; every region of a stack needs its own (they must not overlap).
    vpc_cidr: str = "10.42.0.0/16"

    @field_validator("name")
    @classmethod
    def _dns_safe(cls, value: str) -> str:
        if not _REGION_NAME.fullmatch(value):
            raise ValueError(
                "must be 2-26 lowercase letters, digits or '-', starting with a letter"
            )
        return value

    @field_validator("instance_type")
    @classmethod
    def _ec2_type(cls, value: str) -> str:
        if not _EC2_INSTANCE_TYPE.fullmatch(value):
            raise ValueError("must be an EC2 instance type, like 'm6i.xlarge'")
        return value


class OrchestratorSettings(StrictModel):
    mode: OrchestratorMode = OrchestratorMode.SELF_HOSTED
    nats_url: str | None = None
    api_url: str | None = None

    @model_validator(mode="after")
    def _external_needs_endpoints(self) -> Self:
        if self.mode is OrchestratorMode.EXTERNAL:
            if not self.nats_url or not _NATS_URL.fullmatch(self.nats_url):
                raise ValueError("natsUrl: external mode needs natsUrl like nats://host:4222")
            if not self.api_url or not _API_URL.fullmatch(self.api_url):
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
        if not _ARCHIVE_PREFIX.fullmatch(value):
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
    # Optional: the digest of LOGSTASH_BASE_IMAGE, verified by whoever sets it. The repository
    # cannot ship one (no checkable source publishes it), so without it the Dockerfile's tag
    # default applies.
    logstash_base_digest: str | None = None

    @field_validator("bacalhau")
    @classmethod
    def _supported_bacalhau(cls, value: str) -> str:
        if not BACALHAU_VERSION_PATTERN.fullmatch(value):
            raise ValueError("must be a Bacalhau v1.9.x release tag, like 'v1.9.3'")
        return value

    @field_validator("logstash_base_digest")
    @classmethod
    def _image_digest(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE_DIGEST.fullmatch(value):
            raise ValueError(
                "must be an image digest, 'sha256:' and 64 lowercase hex digits "
                f"(the digest of {LOGSTASH_BASE_IMAGE})"
            )
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

    @field_validator("stack")
    @classmethod
    def _stack_name(cls, value: str) -> str:
        # Not a config key: the name of the selected stack, part of every physical name.
        if not STACK_NAME.fullmatch(value):
            raise ValueError(
                f"the stack's name '{value}' must be lowercase letters, digits and '-' "
                "(it is part of bucket, host and domain names); select a stack named so"
            )
        return value

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
            bad = [name for name in names if name not in AWS_REGIONS]
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
    problems = _deployability_problems(settings)
    if problems:
        raise ConfigError(_format(problems))
    _check_secrets(settings, secrets_present, env_api_key)
    return settings


def _deployability_problems(settings: Settings) -> list[str]:
    """What valid-looking values would still fail once resources exist: names too long for the
    resources they name, and on AWS unusable or overlapping VPC ranges and nodes too small for
    the jobs."""
    aws = settings.backend is Backend.AWS
    per_region = settings.aws.opensearch.placement is SearchPlacement.PER_REGION
    problems = []
    for index, region in enumerate(settings.regions):
        for problem in naming.name_problems(
            settings.project, settings.stack, region.name, aws=aws, search_per_region=per_region
        ):
            problems.append(
                f"{PROJECT}:regions[{index}].name: with stack '{settings.stack}', {problem}; "
                "shorten the stack or region name"
            )
    if not aws:
        return problems
    demand = capacity.node_demand(generator_enabled=settings.jobs.generator.enabled)
    for index, region in enumerate(settings.regions):
        key = f"{PROJECT}:regions[{index}]"
        problems.extend(
            f"{key}.vpcCidr: {problem}"
            for problem in vpc_cidr_problems(region.vpc_cidr, region.nodes)
        )
        for other_index, other in enumerate(settings.regions[:index]):
            if _overlap(region.vpc_cidr, other.vpc_cidr):
                problems.append(
                    f"{key}.vpcCidr: '{region.vpc_cidr}' overlaps regions[{other_index}].vpcCidr "
                    f"'{other.vpc_cidr}'; give every region its own range"
                )
        problems.extend(
            f"{key}.instanceType: {problem}"
            for problem in capacity.instance_type_problems(region.instance_type, demand)
        )
    return problems


def _overlap(left: str, right: str) -> bool:
    try:
        return ipaddress.ip_network(left).overlaps(ipaddress.ip_network(right))
    except ValueError:
        return False  # reported by vpc_cidr_problems


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


def read_stack_file(path: Path, stack: str, env: Mapping[str, str]) -> Settings:
    """The Settings of ``Pulumi.<stack>.yaml`` at ``path``, read as ``load_settings`` reads the
    stack's config (same keys, same validation), for tools that run outside ``pulumi``."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the stack file ({error})") from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: no `config:` mapping")
    values = {key.removeprefix(f"{PROJECT}:"): value for key, value in config.items()}
    raw = {key: values.get(key) for key in ("backend", *_OBJECT_KEYS)}
    # Secrets are stored encrypted ({secure: ...}); only their presence matters here.
    present = frozenset(
        key for key in (TOKEN_KEY, API_KEY_KEY) if isinstance(values.get(key), dict | str)
    )
    return parse_settings(
        raw, stack=stack, secrets_present=present, env_api_key=bool(env.get(API_KEY_ENV))
    )


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
