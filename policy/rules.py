"""Validate functions for the bacalhau-logs policy pack, one per security invariant.

Each takes pulumi-policy's ``ResourceValidationArgs`` (only ``resource_type`` and ``props``, the
camelCase inputs, are read) and a ``report_violation`` callback, so tests call them directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

Report = Callable[[str, str | None], None]

INTERNET = frozenset({"0.0.0.0/0", "::/0"})
TLS_POLICIES = frozenset({"Policy-Min-TLS-1-2-2019-07", "Policy-Min-TLS-1-2-PFS-2023-10"})


class Args(Protocol):
    resource_type: str
    props: Mapping[str, Any]


def _is(args: Args, *types: str) -> bool:
    return args.resource_type in types


def bucket_public_access_blocked(args: Args, report: Report) -> None:
    if not _is(args, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        return
    keys = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    missing = [key for key in keys if args.props.get(key) is not True]
    if missing:
        report(f"all four public access blocks must be on; off: {', '.join(missing)}", None)


def bucket_acls_disabled(args: Args, report: Report) -> None:
    if not _is(args, "aws:s3/bucketOwnershipControls:BucketOwnershipControls"):
        return
    if (args.props.get("rule") or {}).get("objectOwnership") != "BucketOwnerEnforced":
        report("object ownership must be BucketOwnerEnforced (ACLs disabled)", None)


def bucket_encrypted(args: Args, report: Report) -> None:
    if not _is(
        args,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    ):
        return
    rules = args.props.get("rules") or []
    algorithms = {
        (rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") for rule in rules
    }
    if not rules or not algorithms <= {"aws:kms", "aws:kms:dsse", "AES256"}:
        report("default encryption must be SSE-KMS or SSE-S3", None)


def no_ingress_from_internet(args: Args, report: Report) -> None:
    cidrs: list[str] = []
    if _is(args, "aws:ec2/securityGroup:SecurityGroup"):
        for rule in args.props.get("ingress") or []:
            cidrs += rule.get("cidrBlocks") or []
            cidrs += rule.get("ipv6CidrBlocks") or []
    elif _is(args, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        cidrs += [args.props.get("cidrIpv4") or "", args.props.get("cidrIpv6") or ""]
    elif (
        _is(args, "aws:ec2/securityGroupRule:SecurityGroupRule")
        and args.props.get("type") == "ingress"
    ):
        cidrs += args.props.get("cidrBlocks") or []
        cidrs += args.props.get("ipv6CidrBlocks") or []
    open_to = sorted(INTERNET.intersection(cidrs))
    if open_to:
        report(f"ingress from the internet ({', '.join(open_to)}) is not allowed", None)


def instance_hardened(args: Args, report: Report) -> None:
    if not _is(args, "aws:ec2/instance:Instance"):
        return
    if (args.props.get("metadataOptions") or {}).get("httpTokens") != "required":
        report("IMDSv2 is required: metadataOptions.httpTokens must be 'required'", None)
    root = args.props.get("rootBlockDevice") or {}
    if root.get("encrypted") is not True or root.get("volumeType") != "gp3":
        report("the root volume must be an encrypted gp3 volume", None)


def search_domain_secure(args: Args, report: Report) -> None:
    if not _is(args, "aws:opensearch/domain:Domain"):
        return
    props = args.props
    if (props.get("encryptAtRest") or {}).get("enabled") is not True:
        report("encryption at rest must be enabled", None)
    if (props.get("nodeToNodeEncryption") or {}).get("enabled") is not True:
        report("node-to-node encryption must be enabled", None)
    endpoint = props.get("domainEndpointOptions") or {}
    if endpoint.get("enforceHttps") is not True:
        report("HTTPS must be enforced", None)
    if endpoint.get("tlsSecurityPolicy") not in TLS_POLICIES:
        report(f"the TLS policy must be one of {', '.join(sorted(TLS_POLICIES))}", None)
    if (props.get("advancedSecurityOptions") or {}).get("enabled") is not True:
        report("fine-grained access control must be enabled", None)
    cluster = props.get("clusterConfig") or {}
    if (cluster.get("instanceCount") or 1) > 1 and cluster.get("zoneAwarenessEnabled") is not True:
        report("a domain with more than one node must be zone aware", None)
    _no_open_principal(props.get("accessPolicies"), report)


def search_policy_not_open(args: Args, report: Report) -> None:
    if _is(args, "aws:opensearch/domainPolicy:DomainPolicy"):
        _no_open_principal(args.props.get("accessPolicies"), report)


def repository_hardened(args: Args, report: Report) -> None:
    if not _is(args, "aws:ecr/repository:Repository"):
        return
    if args.props.get("imageTagMutability") != "IMMUTABLE":
        report("image tags must be immutable", None)
    if (args.props.get("imageScanningConfiguration") or {}).get("scanOnPush") is not True:
        report("images must be scanned on push", None)


def no_wildcard_iam(args: Args, report: Report) -> None:
    if not _is(args, "aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
        return
    document = _document(args.props.get("policy"))
    for statement in _statements(document):
        if statement.get("Effect") != "Allow":
            continue
        actions = _as_list(statement.get("Action"))
        if any(action == "*" or action.endswith(":*") for action in actions):
            report(f"allow statement with a wildcard action: {actions}", None)
        resources = _as_list(statement.get("Resource"))
        # ecr:GetAuthorizationToken has no resource-level scope; nothing else may use "*".
        if "*" in resources and actions != ["ecr:GetAuthorizationToken"]:
            report(f"allow statement on every resource: {actions}", None)


def _no_open_principal(policy: Any, report: Report) -> None:
    for statement in _statements(_document(policy)):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        values = (
            _as_list(principal)
            if isinstance(principal, str)
            else [value for item in (principal or {}).values() for value in _as_list(item)]
        )
        if "*" in values:
            report("the access policy must not allow every principal ('*')", None)


def _document(policy: Any) -> Mapping[str, Any]:
    if isinstance(policy, str):
        try:
            loaded = json.loads(policy)
        except json.JSONDecodeError:
            return {}
        return loaded if isinstance(loaded, Mapping) else {}
    return policy if isinstance(policy, Mapping) else {}


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = document.get("Statement") or []
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


RULES: dict[str, tuple[str, Callable[[Args, Report], None]]] = {
    "s3-public-access-blocked": (
        "S3 buckets block every kind of public access",
        bucket_public_access_blocked,
    ),
    "s3-acls-disabled": ("S3 buckets disable ACLs (BucketOwnerEnforced)", bucket_acls_disabled),
    "s3-encrypted": ("S3 buckets encrypt by default with SSE-KMS or SSE-S3", bucket_encrypted),
    "no-ingress-from-internet": (
        "No security group admits 0.0.0.0/0 or ::/0",
        no_ingress_from_internet,
    ),
    "ec2-hardened": ("EC2 instances require IMDSv2 and an encrypted gp3 root", instance_hardened),
    "opensearch-secure": (
        "OpenSearch domains encrypt, enforce TLS 1.2+ and FGAC",
        search_domain_secure,
    ),
    "opensearch-policy-not-open": (
        "OpenSearch access policies never allow '*'",
        search_policy_not_open,
    ),
    "ecr-hardened": ("ECR repositories use immutable tags and scan on push", repository_hardened),
    "iam-no-wildcards": ("IAM policies allow no wildcard actions or resources", no_wildcard_iam),
}
