"""IAM, bucket and domain policy documents for the AWS backend, as plain data.

Kept apart from the components so least privilege is readable and tested without Pulumi: every
function takes resolved strings (ARNs, names) and answers a JSON-serialisable dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.ops.layout import RESULTS_PREFIX

Document = dict[str, Any]

SSM_MANAGED_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"

# Nodes tagged with this key (value: the stack) may call the stack's OpenSearch domains. Domains
# trust the account and this tag instead of listing roles, so adding a region never edits a domain
# that already serves other regions.
SEARCH_WRITER_TAG = "bacalhau-logs-search-writer"

_SEARCH_HTTP_ACTIONS = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"]


def _document(*statements: Document) -> Document:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def assume_role(service: str = "ec2.amazonaws.com") -> Document:
    return _document(
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    )


def deny_insecure_transport(bucket_arn: str) -> Document:
    """A bucket policy refusing any request that is not over TLS."""
    return _document(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


def compute_node_policy(
    *,
    bucket_arn: str,
    prefix: str,
    kms_key_arn: str | None,
    repository_arns: Sequence[str],
    search_domain_arns: Sequence[str],
    ca_parameter_arn: str | None,
) -> Document:
    """What a compute node's jobs need: its region's archive prefix, its images, search, the CA,
    and writing query results beside the archive (Bacalhau's S3 publisher runs in the node's
    process with the node's credentials: pkg/publisher/s3/publisher.go).

    No s3:DeleteObject: raw archives are never deleted by the system (lifecycle ages them out),
    and compaction only adds objects. Results are written, never read back, by nodes.
    """
    statements: list[Document] = [
        {
            "Sid": "ListArchivePrefix",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        },
        {
            "Sid": "ReadWriteArchivePrefix",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": f"{bucket_arn}/{prefix}*",
        },
        {
            "Sid": "WriteQueryResults",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": f"{bucket_arn}/{RESULTS_PREFIX}*",
        },
        {
            "Sid": "PullStackImages",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            "Resource": list(repository_arns),
        },
        {
            # ECR issues registry tokens account-wide; the action has no resource-level scope.
            "Sid": "EcrLogin",
            "Effect": "Allow",
            "Action": "ecr:GetAuthorizationToken",
            "Resource": "*",
        },
    ]
    if kms_key_arn:
        statements.append(
            {
                "Sid": "ArchiveKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": kms_key_arn,
            }
        )
    if search_domain_arns:
        statements.append(
            {
                "Sid": "WriteMetrics",
                "Effect": "Allow",
                "Action": _SEARCH_HTTP_ACTIONS,
                "Resource": [f"{arn}/*" for arn in search_domain_arns],
            }
        )
    if ca_parameter_arn:
        statements.append(
            {
                "Sid": "ReadOrchestratorCa",
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": ca_parameter_arn,
            }
        )
    return _document(*statements)


def orchestrator_policy(*, ca_parameter_arn: str) -> Document:
    """The self-hosted orchestrator publishes its self-signed certificate, and nothing else."""
    return _document(
        {
            "Sid": "PublishCa",
            "Effect": "Allow",
            "Action": ["ssm:PutParameter", "ssm:GetParameter"],
            "Resource": ca_parameter_arn,
        }
    )


def search_access_policy(
    *, domain_arn: str, account_id: str, stack: str, admin_arns: Sequence[str]
) -> Document:
    """Who may reach a domain: nodes tagged for this stack, and named admins. Never everyone."""
    statements: list[Document] = [
        {
            "Sid": "StackNodes",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": _SEARCH_HTTP_ACTIONS,
            "Resource": f"{domain_arn}/*",
            "Condition": {"StringEquals": {f"aws:PrincipalTag/{SEARCH_WRITER_TAG}": stack}},
        }
    ]
    if admin_arns:
        statements.append(
            {
                "Sid": "Admins",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(admin_arns))},
                "Action": "es:ESHttp*",
                "Resource": f"{domain_arn}/*",
            }
        )
    return _document(*statements)


def principals(document: Document) -> list[str]:
    """Every principal a resource policy names (``*`` included), for checks and the policy pack."""
    found: list[str] = []
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        principal = statement.get("Principal")
        if isinstance(principal, str):
            found.append(principal)
        elif isinstance(principal, dict):
            for value in principal.values():
                found.extend([value] if isinstance(value, str) else value)
    return found
