"""Policy documents as plain data: least privilege without Pulumi."""

from __future__ import annotations

from infra import aws_policies

BUCKET = "arn:aws:s3:::b"


def _node(**overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "bucket_arn": BUCKET,
        "prefix": "logs/",
        "kms_key_arn": None,
        "repository_arns": ["arn:aws:ecr:us-east-1:1:repository/x/agent"],
        "search_domain_arns": [],
        "ca_parameter_arn": None,
    }
    args.update(overrides)
    return aws_policies.compute_node_policy(**args)  # type: ignore[arg-type]


def test_node_policy_without_optional_parts() -> None:
    sids = [s["Sid"] for s in _node()["Statement"]]  # type: ignore[index]
    assert sids == [
        "ListArchivePrefix",
        "ReadWriteArchivePrefix",
        "WriteQueryResults",
        "PullStackImages",
        "EcrLogin",
    ]


def test_nodes_may_write_query_results_beside_the_archive_and_nothing_more() -> None:
    """Query jobs publish their result directory with Bacalhau's S3 publisher, which runs in the
    compute node's process with the node's role (pkg/publisher/s3/publisher.go at v1.9.3): the
    role must allow PutObject under ops-results/ or every query execution fails AccessDenied."""
    by_sid = {s["Sid"]: s for s in _node()["Statement"]}  # type: ignore[attr-defined]
    results = by_sid["WriteQueryResults"]
    assert results["Resource"] == f"{BUCKET}/ops-results/*"
    assert results["Action"] == ["s3:PutObject", "s3:AbortMultipartUpload"]
    assert not any("Delete" in a or "Get" in a for a in results["Action"])


def test_node_policy_with_key_search_and_ca() -> None:
    policy = _node(
        kms_key_arn="arn:aws:kms:us-east-1:1:key/k",
        search_domain_arns=["arn:aws:es:us-east-1:1:domain/d"],
        ca_parameter_arn="arn:aws:ssm:us-east-1:1:parameter/ca",
    )
    by_sid = {s["Sid"]: s for s in policy["Statement"]}  # type: ignore[attr-defined]
    assert by_sid["ArchiveKey"]["Resource"] == "arn:aws:kms:us-east-1:1:key/k"
    assert by_sid["WriteMetrics"]["Resource"] == ["arn:aws:es:us-east-1:1:domain/d/*"]
    assert by_sid["ReadOrchestratorCa"]["Action"] == "ssm:GetParameter"


def test_deny_insecure_transport_covers_bucket_and_objects() -> None:
    (statement,) = aws_policies.deny_insecure_transport(BUCKET)["Statement"]
    assert statement["Resource"] == [BUCKET, f"{BUCKET}/*"]
    assert statement["Effect"] == "Deny"


def test_search_policy_never_names_everyone() -> None:
    policy = aws_policies.search_access_policy(
        domain_arn="arn:aws:es:r:1:domain/d",
        account_id="1",
        stack="prod",
        admin_arns=["arn:aws:iam::1:role/ci", "arn:aws:iam::1:role/ci"],
    )
    assert aws_policies.principals(policy) == ["arn:aws:iam::1:root", "arn:aws:iam::1:role/ci"]


def test_principals_reads_string_and_map_forms() -> None:
    document = {"Statement": {"Principal": "*"}}
    assert aws_policies.principals(document) == ["*"]
