from __future__ import annotations

import pytest

from infra.naming import bucket_name, job_name, node_name, stack_prefix


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
