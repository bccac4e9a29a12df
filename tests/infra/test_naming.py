from __future__ import annotations

import pytest

from infra.naming import (
    bucket_name,
    job_name,
    minio_host,
    name_problems,
    node_name,
    opensearch_host,
    search_domain_name,
    stack_prefix,
)


def test_names_derive_from_project_stack_and_region() -> None:
    assert stack_prefix("bacalhau-logs", "Dev") == "bacalhau-logs-dev"
    assert bucket_name("bacalhau-logs", "dev", "us-east-1") == "bacalhau-logs-dev-us-east-1-archive"
    assert node_name("bacalhau-logs", "dev", "eu-west-1", 2) == "bacalhau-logs-dev-eu-west-1-node-2"
    assert job_name("dev", "us-east-1", "logstash") == "dev-us-east-1-logstash"


def test_bucket_suffix_for_global_uniqueness() -> None:
    assert bucket_name("bacalhau-logs", "prod", "us-east-1", "1a2b").endswith("-archive-1a2b")


def test_bucket_name_too_long_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a valid S3 bucket name"):
        bucket_name("bacalhau-logs", "a-very-long-stack-name-indeed", "ap-southeast-2", "x" * 12)


@pytest.mark.parametrize(
    ("stack", "region"), [("prod", None), ("prod", "eu-west-1"), ("a" * 20, "ap-southeast-2")]
)
def test_search_domain_name_is_the_one_the_aws_stack_creates(
    stack: str, region: str | None
) -> None:
    from infra.components.aws_search import domain_name

    expected = search_domain_name(stack, region)
    if len(expected) > 28:
        with pytest.raises(ValueError, match="3-28"):
            domain_name(stack, region)
        assert name_problems(
            "bacalhau-logs",
            stack,
            region or "us-east-1",
            aws=True,
            search_per_region=region is not None,
        )
    else:
        assert domain_name(stack, region) == expected


def test_local_hosts_are_the_containers_the_dev_stack_creates() -> None:
    from stack_harness import REPO, run_program, stack_config

    run = run_program(stack_config(REPO / "Pulumi.dev.yaml"), stack="dev")
    containers = {c.inputs["name"] for c in run.of_type("docker:index/container:Container")}
    assert minio_host("bacalhau-logs", "dev") in containers
    assert opensearch_host("bacalhau-logs", "dev") in containers


def test_name_problems_pass_for_the_example_stacks() -> None:
    for region in ("us-east-1", "eu-west-1", "ap-southeast-2"):
        assert name_problems("bacalhau-logs", "prod", region, aws=True) == []
        assert name_problems("bacalhau-logs", "dev", region, aws=False) == []


def test_name_problems_name_every_limit() -> None:
    problems = name_problems("bacalhau-logs", "s" * 40, "r" * 26, aws=True, search_per_region=True)
    assert [p.split("'")[0] for p in problems] == [
        "the archive bucket ",
        "the node hostname ",
        "the OpenSearch domain ",
    ]
