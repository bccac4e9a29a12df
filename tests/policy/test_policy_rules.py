"""Each policy-pack rule passes a compliant resource and reports a non-compliant one."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from policy import rules

Run = Callable[[Any, str, Mapping[str, Any]], list[str]]

BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INSTANCE = "aws:ec2/instance:Instance"
DOMAIN = "aws:opensearch/domain:Domain"
DOMAIN_POLICY = "aws:opensearch/domainPolicy:DomainPolicy"
REPOSITORY = "aws:ecr/repository:Repository"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"

ALL_BLOCKS = {
    "blockPublicAcls": True,
    "blockPublicPolicy": True,
    "ignorePublicAcls": True,
    "restrictPublicBuckets": True,
}
HARDENED_INSTANCE = {
    "metadataOptions": {"httpTokens": "required"},
    "rootBlockDevice": {"encrypted": True, "volumeType": "gp3"},
}
SECURE_DOMAIN = {
    "encryptAtRest": {"enabled": True},
    "nodeToNodeEncryption": {"enabled": True},
    "domainEndpointOptions": {
        "enforceHttps": True,
        "tlsSecurityPolicy": "Policy-Min-TLS-1-2-PFS-2023-10",
    },
    "advancedSecurityOptions": {"enabled": True},
    "clusterConfig": {"instanceCount": 2, "zoneAwarenessEnabled": True},
    "accessPolicies": json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::123456789012:role/node"},
                    "Action": "es:ESHttpPost",
                }
            ]
        }
    ),
}
OPEN_POLICY = json.dumps(
    {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "es:*"}]}
)


@pytest.mark.parametrize(
    ("validate", "resource_type", "good", "bad"),
    [
        (
            rules.bucket_public_access_blocked,
            BLOCK,
            ALL_BLOCKS,
            {**ALL_BLOCKS, "restrictPublicBuckets": False},
        ),
        (
            rules.bucket_acls_disabled,
            OWNERSHIP,
            {"rule": {"objectOwnership": "BucketOwnerEnforced"}},
            {"rule": {"objectOwnership": "ObjectWriter"}},
        ),
        (
            rules.bucket_encrypted,
            SSE,
            {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]},
            {"rules": []},
        ),
        (
            rules.no_ingress_from_internet,
            SG,
            {"ingress": [{"cidrBlocks": ["10.0.0.0/16"]}]},
            {"ingress": [{"cidrBlocks": ["0.0.0.0/0"]}]},
        ),
        (
            rules.no_ingress_from_internet,
            SG,
            {"ingress": []},
            {"ingress": [{"ipv6CidrBlocks": ["::/0"]}]},
        ),
        (
            rules.no_ingress_from_internet,
            SG_RULE,
            {"cidrIpv4": "198.51.100.7/32"},
            {"cidrIpv4": "0.0.0.0/0"},
        ),
        (
            rules.no_ingress_from_internet,
            LEGACY_RULE,
            {"type": "egress", "cidrBlocks": ["0.0.0.0/0"]},
            {"type": "ingress", "cidrBlocks": ["0.0.0.0/0"]},
        ),
        (
            rules.instance_hardened,
            INSTANCE,
            HARDENED_INSTANCE,
            {**HARDENED_INSTANCE, "metadataOptions": {"httpTokens": "optional"}},
        ),
        (
            rules.instance_hardened,
            INSTANCE,
            HARDENED_INSTANCE,
            {**HARDENED_INSTANCE, "rootBlockDevice": {"encrypted": False, "volumeType": "gp3"}},
        ),
        (
            rules.search_domain_secure,
            DOMAIN,
            SECURE_DOMAIN,
            {**SECURE_DOMAIN, "domainEndpointOptions": {"enforceHttps": True}},
        ),
        (
            rules.search_domain_secure,
            DOMAIN,
            SECURE_DOMAIN,
            {**SECURE_DOMAIN, "clusterConfig": {"instanceCount": 3}},
        ),
        (
            rules.search_domain_secure,
            DOMAIN,
            SECURE_DOMAIN,
            {**SECURE_DOMAIN, "accessPolicies": OPEN_POLICY},
        ),
        (
            rules.search_policy_not_open,
            DOMAIN_POLICY,
            {"accessPolicies": SECURE_DOMAIN["accessPolicies"]},
            {"accessPolicies": json.dumps({"Statement": {"Effect": "Allow", "Principal": "*"}})},
        ),
        (
            rules.repository_hardened,
            REPOSITORY,
            {"imageTagMutability": "IMMUTABLE", "imageScanningConfiguration": {"scanOnPush": True}},
            {"imageTagMutability": "MUTABLE", "imageScanningConfiguration": {"scanOnPush": True}},
        ),
        (
            rules.no_wildcard_iam,
            ROLE_POLICY,
            {
                "policy": json.dumps(
                    {
                        "Statement": [
                            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:b/*"},
                            {
                                "Effect": "Allow",
                                "Action": "ecr:GetAuthorizationToken",
                                "Resource": "*",
                            },
                        ]
                    }
                )
            },
            {
                "policy": json.dumps(
                    {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:b"}]}
                )
            },
        ),
        (
            rules.no_wildcard_iam,
            ROLE_POLICY,
            {"policy": json.dumps({"Statement": [{"Effect": "Deny", "Action": "*"}]})},
            {
                "policy": json.dumps(
                    {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
                )
            },
        ),
    ],
)
def test_rule(
    violations: Run,
    validate: Any,
    resource_type: str,
    good: Mapping[str, Any],
    bad: Mapping[str, Any],
) -> None:
    assert violations(validate, resource_type, good) == []
    assert violations(validate, resource_type, bad)


@pytest.mark.parametrize("name", sorted(rules.RULES))
def test_rules_ignore_other_resource_types(violations: Run, name: str) -> None:
    _, validate = rules.RULES[name]
    assert (
        violations(validate, "aws:sns/topic:Topic", {"ingress": [{"cidrBlocks": ["0.0.0.0/0"]}]})
        == []
    )


def test_pack_wires_every_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy
    from pathlib import Path

    import pulumi_policy

    created: list[Any] = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: created.append(kwargs))
    pack = Path(__file__).resolve().parents[2] / "policy"
    monkeypatch.syspath_prepend(str(pack))
    runpy.run_path(str(pack / "__main__.py"))
    (kwargs,) = created
    assert {policy.name for policy in kwargs["policies"]} == set(rules.RULES)
    assert kwargs["enforcement_level"] is pulumi_policy.EnforcementLevel.MANDATORY
