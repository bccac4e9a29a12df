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


LOGSTASH_DIGEST = "sha256:" + "0123456789abcdef" * 4  # made up: only its shape matters here


def test_logstash_base_digest_is_optional_and_kept_as_given() -> None:
    assert parse_settings(raw(), stack="dev").versions.logstash_base_digest is None
    settings = parse_settings(raw(versions={"logstashBaseDigest": LOGSTASH_DIGEST}), stack="dev")
    assert settings.versions.logstash_base_digest == LOGSTASH_DIGEST


@pytest.mark.parametrize(
    "digest",
    [
        "0123456789abcdef" * 4,  # no algorithm
        "sha256:" + "0123456789ABCDEF" * 4,  # registries write lowercase hex
        "sha256:" + "0123456789abcdef" * 3,  # too short
        "sha512:" + "0123456789abcdef" * 8,  # registries address images by sha256
        "docker.elastic.co/logstash/logstash-oss:8.19.20@sha256:" + "0" * 64,  # a reference
        "8.19.20",  # a tag
    ],
)
def test_bad_logstash_base_digest_names_the_key_and_the_form(digest: str) -> None:
    message = error_for(raw(versions={"logstashBaseDigest": digest}))
    assert (
        "bacalhau-logs:versions.logstashBaseDigest: must be an image digest, "
        "'sha256:' and 64 lowercase hex digits" in message
    )
    assert repr(digest) in message


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


def aws_raw(regions: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    return raw(backend="aws", regions=regions, **overrides)


def aws_region(name: str = "us-east-1", **fields: Any) -> dict[str, Any]:
    return {"name": name, "nodes": 2, "instanceType": "m6i.xlarge", **fields}


def test_prod_stack_file_parses() -> None:
    config = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"]
    values = {key.split(":", 1)[1]: value for key, value in config.items()}
    settings = parse_settings(raw(**values), stack="prod")
    assert settings.region_names == ("us-east-1", "eu-west-1", "ap-southeast-2")


# "$" in a Python regex also matches before a trailing newline; every value must be refused.
@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"regions": [{"name": "us-east-1\n", "nodes": 1}]}, "regions[0].name"),
        ({"versions": {"bacalhau": "v1.9.3\n"}}, "versions.bacalhau"),
        (
            {"versions": {"logstashBaseDigest": "sha256:" + "a" * 64 + "\n"}},
            "versions.logstashBaseDigest",
        ),
        ({"archive": {"prefix": "logs/\n"}}, "archive.prefix"),
        (
            {"orchestrator": {**EXTERNAL, "natsUrl": "nats://orch.example:4222\n"}},
            "orchestrator.natsUrl",
        ),
        (
            {"orchestrator": {**EXTERNAL, "apiUrl": "https://orch.example\n"}},
            "orchestrator.apiUrl",
        ),
        ({"aws": {"bacalhauSha256": "a" * 64 + "\n"}}, "aws.bacalhauSha256"),
        ({"aws": {"orchestratorInstanceType": "t3.small\n"}}, "aws.orchestratorInstanceType"),
        (
            {"aws": {"searchAdminArns": ["arn:aws:iam::123456789012:role/a\n"]}},
            "aws.searchAdminArns",
        ),
        (
            {"aws": {"opensearch": {"instanceType": "t3.small.search\n"}}},
            "aws.opensearch.instanceType",
        ),
        ({"aws": {"ami": {"owner": "amazon\n"}}}, "aws.ami.owner"),
        ({"aws": {"ami": {"namePattern": "al2023-*\n"}}}, "aws.ami.namePattern"),
        ({"regions": [aws_region(instanceType="m6i.xlarge\n")]}, "regions[0].instanceType"),
    ],
)
def test_trailing_newlines_are_refused(overrides: dict[str, Any], key: str) -> None:
    message = error_for(raw(**overrides), secrets_present=frozenset({TOKEN_KEY, API_KEY_KEY}))
    assert f"bacalhau-logs:{key}" in message


@pytest.mark.parametrize(
    ("cidr", "expected"),
    [
        ("banana", "is not an IPv4 network"),
        ("10.0.0.1/16", "host bits must be zero"),
        ("fd00::/48", "is not IPv4"),
        ("8.8.0.0/16", "is not a private range"),
        ("100.64.0.0/16", "is not a private range"),
        ("10.0.0.0/8", "must be /16 to /24"),
        ("10.0.0.0/25", "must be /16 to /24"),
        ("172.17.0.0/20", "overlaps Docker's bridge 172.17.0.0/16"),
    ],
)
def test_vpc_cidr_must_be_a_usable_private_range(cidr: str, expected: str) -> None:
    message = error_for(aws_raw([aws_region(vpcCidr=cidr)]))
    assert "bacalhau-logs:regions[0].vpcCidr: " in message
    assert expected in message


def test_vpc_must_hold_its_nodes() -> None:
    """Nodes alternate over two private subnets, each the VPC's prefix + 4 (aws_network.py), and
    AWS keeps 5 addresses of every subnet: a /24 gives two /28s of 11 usable addresses."""
    assert parse_settings(aws_raw([aws_region(nodes=22, vpcCidr="10.1.0.0/24")]), stack="p")
    message = error_for(aws_raw([aws_region(nodes=23, vpcCidr="10.1.0.0/24")]))
    assert "'10.1.0.0/24' is too small for 23 nodes" in message


def test_smallest_vpc_is_one_aws_network_can_split() -> None:
    from infra.components.aws_network import AZ_COUNT, subnet_cidrs
    from infra.settings_aws import NODE_SUBNETS

    assert NODE_SUBNETS == AZ_COUNT
    assert subnet_cidrs("10.1.0.0/24", AZ_COUNT + 1)[-1] == "10.1.0.32/28"


def test_regions_need_their_own_vpc_ranges() -> None:
    regions = [
        aws_region("us-east-1", vpcCidr="10.10.0.0/16"),
        aws_region("eu-west-1", vpcCidr="10.10.0.0/16"),
        aws_region("ap-south-1", vpcCidr="10.10.128.0/17"),
    ]
    message = error_for(aws_raw(regions))
    assert "bacalhau-logs:regions[1].vpcCidr: '10.10.0.0/16' overlaps regions[0].vpcCidr" in message
    assert "bacalhau-logs:regions[2].vpcCidr: '10.10.128.0/17' overlaps regions[0]" in message
    # Omitting vpcCidr gives every region the same default: refused too, on AWS.
    message = error_for(
        aws_raw([{"name": "us-east-1", "nodes": 1}, {"name": "us-west-2", "nodes": 1}])
    )
    assert "regions[1].vpcCidr: '10.42.0.0/16' overlaps regions[0].vpcCidr" in message


def test_docker_backend_ignores_vpc_ranges() -> None:
    regions = [{"name": "us-east-1", "nodes": 1}, {"name": "eu-west-1", "nodes": 1}]
    assert parse_settings(raw(regions=regions), stack="dev").region_names == (
        "us-east-1",
        "eu-west-1",
    )


@pytest.mark.parametrize("name", ["us-east-9", "eu-west-42", "us-gov-east-7", "mars-north-1"])
def test_made_up_aws_region_names_are_refused(name: str) -> None:
    message = error_for(aws_raw([aws_region(name)]))
    assert f"bacalhau-logs:regions: {name} are not AWS region names" in message


def test_aws_region_list_names_only_real_regions() -> None:
    """Every name in the list is a region of botocore's endpoint data, the source it cites."""
    import json
    import os

    import botocore

    from infra.settings_aws import AWS_REGIONS

    endpoints = os.path.join(os.path.dirname(botocore.__file__), "data", "endpoints.json")
    with open(endpoints) as handle:
        partitions = json.load(handle)["partitions"]
    (commercial,) = [p for p in partitions if p["partition"] == "aws"]
    assert set(AWS_REGIONS) <= set(commercial["regions"])


def test_home_region_must_be_real() -> None:
    message = error_for(aws_raw([aws_region()], aws={"homeRegion": "us-moon-1"}))
    assert "bacalhau-logs:aws.homeRegion: must be an AWS region name" in message


def test_stack_name_must_be_dns_safe() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw(), stack="Prod_EU")
    assert "the stack's name 'Prod_EU' must be lowercase letters, digits and '-'" in str(
        caught.value
    )


def test_names_too_long_for_aws_resources_are_refused_before_declaring() -> None:
    """The tightest AWS limits: an S3 bucket "bacalhau-logs-<stack>-<region>-archive-<12-digit
    account>" of at most 63 characters, an OpenSearch domain "bl-<stack>[-<region>]" of at
    most 28."""
    # 36 fixed characters + stack + region: a 14-character region leaves 13 for the stack.
    assert parse_settings(aws_raw([aws_region("ap-southeast-2")]), stack="a" * 13)
    with pytest.raises(ConfigError) as caught:
        parse_settings(aws_raw([aws_region("ap-southeast-2")]), stack="a" * 14)
    message = str(caught.value)
    assert (
        "bacalhau-logs:regions[0].name: with stack 'aaaaaaaaaaaaaa', the archive bucket" in message
    )
    assert "(64 characters) is not a valid S3 bucket name" in message
    # A domain per region: "bl-" + stack + "-" + region must fit in 28.
    per_region = {"opensearch": {"placement": "per-region"}}
    assert parse_settings(aws_raw([aws_region("us-east-1")], aws=per_region), stack="a" * 15)
    with pytest.raises(ConfigError) as caught:
        parse_settings(aws_raw([aws_region("us-east-1")], aws=per_region), stack="a" * 16)
    assert "the OpenSearch domain 'bl-aaaaaaaaaaaaaaaa-us-east-1' (29 characters)" in str(
        caught.value
    )


def test_names_too_long_for_docker_hosts_are_refused() -> None:
    """A node's hostname (its Bacalhau node name) is one DNS label of at most 63 characters."""
    region = [{"name": "r" * 26, "nodes": 1}]
    assert parse_settings(raw(regions=region), stack="s" * 14)
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw(regions=region), stack="s" * 15)
    assert "the node hostname 'bacalhau-logs-sssssssssssssss-" in str(caught.value)
    assert "(64 characters) is not a DNS label of at most 63" in str(caught.value)


def test_nodes_too_small_for_the_jobs_are_refused() -> None:
    """Bacalhau offers jobs 80% of a node's CPUs (pkg/config/defaults.go): on a 2-vCPU type the
    daemons, the compactor and a query do not fit, so queries would queue forever."""
    message = error_for(aws_raw([aws_region(instanceType="t3.medium")]))
    assert "bacalhau-logs:regions[0].instanceType: 't3.medium' is too small" in message
    message = error_for(aws_raw([aws_region(instanceType="x9.mega")]))
    assert "bacalhau-logs:regions[0].instanceType: 'x9.mega' is not an instance type" in message


def test_default_instance_type_fits_with_the_generator() -> None:
    settings = parse_settings(
        aws_raw([{"name": "us-east-1", "nodes": 1}], jobs={"generator": {"enabled": True}}),
        stack="p",
    )
    assert settings.regions[0].instance_type == "m6i.xlarge"


def test_docker_backend_does_not_size_instance_types() -> None:
    regions = [{"name": "us-east-1", "nodes": 1, "instanceType": "t3.medium"}]
    assert parse_settings(raw(regions=regions), stack="dev")
