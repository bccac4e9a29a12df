"""Adding a region adds only that region's resources; bad AWS config names the key."""

from __future__ import annotations

from typing import Any

import pytest
from aws_harness import ACCOUNT, AwsRun, prod_config, prod_settings, run_aws

from infra.components.aws_network import subnet_cidrs
from infra.components.aws_search import domain_name
from infra.settings import ConfigError, parse_settings

NEW = "ca-central-1"


def _by_name(run: AwsRun) -> dict[str, tuple[str, dict[str, Any]]]:
    return {r.name: (r.type, r.inputs) for r in run.resources}


def test_a_fourth_region_adds_only_its_own_resources(prod_run: AwsRun) -> None:
    regions = [*prod_config()["regions"], {"name": NEW, "nodes": 1, "vpcCidr": "10.40.0.0/16"}]
    four = run_aws(prod_settings(regions=regions))
    before, after = _by_name(prod_run), _by_name(four)
    assert set(before) <= set(after)
    for name, declared in before.items():
        assert after[name] == declared, f"{name} changed when {NEW} was added"
    added = set(after) - set(before)
    # Its nodes' access to the shared domain is its own writer mapping, not a shared one's edit.
    assert f"{NEW}-search-writer" in added
    assert after[f"{NEW}-search-writer"][1]["role_arn"] == (
        f"arn:aws:iam::{ACCOUNT}:role/{NEW}-nodes-role"
    )
    for name in added:
        assert name.startswith((f"{NEW}-", f"jobs-{NEW}")) or name in {
            f"aws-{NEW}",
            f"orchestrator-nats-from-{NEW}",
        }, name


def test_per_region_search_puts_one_domain_in_each_region() -> None:
    aws = {**prod_config()["aws"], "opensearch": {"placement": "per-region"}}
    run = run_aws(prod_settings(aws=aws))
    domains = run.of_type("aws:opensearch/domain:Domain")
    assert {d.inputs["domainName"] for d in domains} == {
        "bl-prod-us-east-1",
        "bl-prod-eu-west-1",
        "bl-prod-ap-southeast-2",
    }
    for domain in domains:
        region = domain.name.removesuffix("-search-domain")
        assert f"::aws-{region}::" in domain.provider
        assert domain.inputs["clusterConfig"]["instanceCount"] == 1
        assert not domain.inputs["clusterConfig"]["zoneAwarenessEnabled"]
    assert run.outputs["opensearchUrls"]["eu-west-1"] == (
        "https://search-bl-prod-eu-west-1.es.amazonaws.com"
    )


def test_external_orchestrator_declares_no_orchestrator() -> None:
    import pulumi

    from infra.settings import Secrets

    settings = parse_settings(
        {
            **prod_config(),
            "orchestrator": {
                "mode": "external",
                "natsUrl": "tls://nats.example.com:4222",
                "apiUrl": "https://api.example.com",
            },
        },
        stack="prod",
        secrets_present=frozenset({"orchestratorToken", "orchestratorApiKey"}),
    )
    token = pulumi.Output.secret("external-token")
    run = run_aws(settings, Secrets(orchestrator_token=token, orchestrator_api_key=None))
    assert not [r for r in run.resources if r.name.startswith("orchestrator")]
    assert run.outputs["orchestratorApiUrl"] == "https://api.example.com"
    node = run.named("us-east-1-nodes-bacalhau-logs-prod-us-east-1-node-1")
    assert "external-token" in node.inputs["userData"]["value"]
    assert "CACert" not in node.inputs["userData"]["value"]


@pytest.mark.parametrize(
    ("aws", "key"),
    [
        ({"opensearch": {"instanceCount": 5}}, "bacalhau-logs:aws.opensearch.instanceCount"),
        ({"opensearch": {"instanceType": "t3.small"}}, "bacalhau-logs:aws.opensearch.instanceType"),
        ({"bacalhauSha256": "not-a-sum"}, "bacalhau-logs:aws.bacalhauSha256"),
        ({"apiAllowedCidrs": ["0.0.0.0/0"]}, "bacalhau-logs:aws.apiAllowedCidrs"),
        ({"archiveEncryption": "rot13"}, "bacalhau-logs:aws.archiveEncryption"),
        ({"searchAdminArns": ["alice"]}, "bacalhau-logs:aws.searchAdminArns"),
        ({"homeRegion": "us-west-2"}, "bacalhau-logs:aws.homeRegion"),
        ({"rootVolumeGb": 2}, "bacalhau-logs:aws.rootVolumeGb"),
        ({"orchestratorInstanceType": "big"}, "bacalhau-logs:aws.orchestratorInstanceType"),
        ({"nope": 1}, "bacalhau-logs:aws.nope"),
    ],
)
def test_bad_aws_config_names_the_key(aws: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_settings({**prod_config(), "aws": aws}, stack="prod")
    assert key in str(error.value)


def test_long_stack_names_fail_with_the_placement_key() -> None:
    with pytest.raises(ValueError, match="3-28"):
        domain_name("a-very-long-stack-name", "ap-southeast-2")
    assert domain_name("prod", None) == "bl-prod"


def test_subnets_are_carved_from_the_vpc() -> None:
    assert subnet_cidrs("10.10.0.0/16", 3) == ["10.10.0.0/20", "10.10.16.0/20", "10.10.32.0/20"]
    with pytest.raises(ValueError, match="too small"):
        subnet_cidrs("10.0.0.0/28", 17)
