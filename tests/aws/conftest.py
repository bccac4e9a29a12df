"""Fixtures for the AWS stack tests; the machinery lives in ``aws_harness``."""

from __future__ import annotations

import pytest
from aws_harness import AwsRun, prod_settings, run_aws


@pytest.fixture(scope="session")
def prod_run() -> AwsRun:
    """One mocked run of the committed three-region stack, shared by the invariant tests."""
    return run_aws(prod_settings())
