"""Stack config validation: every bad input fails before any resource, naming the key path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.settings import (
    API_KEY_KEY,
    TOKEN_KEY,
    Backend,
    ConfigError,
    OrchestratorMode,
    parse_settings,
)

REPO = Path(__file__).resolve().parents[2]
ONE_REGION = [{"name": "us-east-1", "nodes": 2}]


def raw(**overrides: Any) -> dict[str, Any]:
    """Raw config as Pulumi hands it over: objects arrive as JSON strings."""
    values: dict[str, Any] = {"backend": "docker", "regions": ONE_REGION, **overrides}
    return {k: v if isinstance(v, str) or v is None else json.dumps(v) for k, v in values.items()}


def error_for(values: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_settings(values, stack="dev", **kwargs)
    return str(caught.value)


def test_dev_stack_file_parses_into_typed_settings() -> None:
    config = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    values = {key.split(":", 1)[1]: value for key, value in config.items()}
    settings = parse_settings(raw(**values), stack="dev")
    assert settings.backend is Backend.DOCKER
    assert settings.region_names == ("us-east-1", "eu-west-1")
    assert settings.orchestrator.mode is OrchestratorMode.SELF_HOSTED
    assert settings.jobs.canary_region == "us-east-1"
    assert settings.jobs.generator.enabled is True
    assert settings.archive.destroy_with_stack is False


def test_defaults_are_safe() -> None:
    settings = parse_settings(raw(), stack="dev")
    assert settings.versions.bacalhau == "v1.9.3"
    assert settings.archive.prefix == "logs/"
    assert settings.jobs.generator.enabled is False


def test_missing_regions() -> None:
    message = error_for({"backend": "docker"})
    assert "bacalhau-logs:regions: required" in message


def test_empty_regions() -> None:
    assert "bacalhau-logs:regions: at least one region is required" in error_for(raw(regions=[]))


def test_zero_nodes_names_the_region_index() -> None:
    message = error_for(raw(regions=[*ONE_REGION, {"name": "eu-west-1", "nodes": 0}]))
    assert "bacalhau-logs:regions[1].nodes" in message
    assert "greater than or equal to 1" in message


def test_duplicate_region() -> None:
    message = error_for(raw(regions=[*ONE_REGION, {"name": "us-east-1", "nodes": 1}]))
    assert "bacalhau-logs:regions: duplicate region name(s) us-east-1" in message


def test_unknown_backend_lists_allowed_values() -> None:
    message = error_for(raw(backend="gcp"))
    assert "bacalhau-logs:backend" in message
    assert "'docker' or 'aws'" in message
    assert "'gcp'" in message


def test_missing_backend() -> None:
    assert "bacalhau-logs:backend: required; one of docker, aws" in error_for(
        {"regions": json.dumps(ONE_REGION)}
    )


@pytest.mark.parametrize("version", ["v1.8.0", "1.9.3", "latest", "v1.9"])
def test_bad_bacalhau_version(version: str) -> None:
    message = error_for(raw(versions={"bacalhau": version}))
    assert "bacalhau-logs:versions.bacalhau: must be a Bacalhau v1.9.x release tag" in message


def test_unknown_key_is_a_typo_not_ignored() -> None:
    message = error_for(raw(regions=[{"name": "us-east-1", "nodes": 1, "node": 3}]))
    assert "bacalhau-logs:regions[0].node: unknown key" in message


def test_region_name_must_be_dns_safe() -> None:
    message = error_for(raw(regions=[{"name": "US_East", "nodes": 1}]))
    assert "bacalhau-logs:regions[0].name" in message


def test_aws_backend_needs_aws_region_names() -> None:
    message = error_for(raw(backend="aws", regions=[{"name": "moon-base", "nodes": 1}]))
    assert "bacalhau-logs:regions: moon-base are not AWS region names" in message


def test_canary_must_be_a_region() -> None:
    message = error_for(raw(jobs={"canaryRegion": "ap-south-1"}))
    assert "bacalhau-logs:jobs.canaryRegion: 'ap-south-1' is not one of us-east-1" in message


def test_all_problems_reported_at_once() -> None:
    message = error_for(raw(backend="gcp", regions=[{"name": "us-east-1", "nodes": 0}]))
    assert "bacalhau-logs:backend" in message
    assert "bacalhau-logs:regions[0].nodes" in message


def test_malformed_object_value() -> None:
    message = error_for({"backend": "docker", "regions": "[{name: "})
    assert "bacalhau-logs:regions: not valid YAML/JSON" in message


EXTERNAL = {
    "mode": "external",
    "natsUrl": "nats://orch.example:4222",
    "apiUrl": "https://orch.example",
}


def test_external_mode_needs_its_secrets() -> None:
    message = error_for(raw(orchestrator=EXTERNAL))
    assert f"bacalhau-logs:{TOKEN_KEY}: external mode needs" in message
    assert f"bacalhau-logs:{API_KEY_KEY}: external mode needs" in message


def test_external_mode_api_key_may_come_from_the_environment() -> None:
    settings = parse_settings(
        raw(orchestrator=EXTERNAL),
        stack="dev",
        secrets_present=frozenset({TOKEN_KEY}),
        env_api_key=True,
    )
    assert settings.orchestrator.api_url == "https://orch.example"


def test_external_mode_needs_endpoints() -> None:
    message = error_for(
        raw(orchestrator={"mode": "external", "natsUrl": "nats://orch:4222"}),
        secrets_present=frozenset({TOKEN_KEY, API_KEY_KEY}),
    )
    assert "bacalhau-logs:orchestrator.apiUrl: external mode needs apiUrl" in message


def test_self_hosted_rejects_external_endpoints() -> None:
    message = error_for(raw(orchestrator={"natsUrl": "nats://orch:4222"}))
    assert "only allowed with mode: external" in message


def test_unknown_orchestrator_mode() -> None:
    message = error_for(raw(orchestrator={"mode": "managed"}))
    assert "bacalhau-logs:orchestrator.mode" in message
    assert "'self-hosted' or 'external'" in message


def test_lifecycle_days_must_grow() -> None:
    message = error_for(raw(archive={"glacierAfterDays": 400}))
    assert "bacalhau-logs:archive" in message
    assert "infrequentAccessAfterDays < glacierAfterDays < expireAfterDays" in message


def test_archive_prefix_shape() -> None:
    assert "bacalhau-logs:archive.prefix" in error_for(raw(archive={"prefix": "/logs"}))
