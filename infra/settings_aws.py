"""Settings that only the AWS backend reads (``bacalhau-logs:aws``)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from infra.config_model import StrictModel


class SearchPlacement(StrEnum):
    HOME = "home"
    PER_REGION = "per-region"


class OpenSearchSettings(StrictModel):
    placement: SearchPlacement = SearchPlacement.HOME
    instance_type: str = "t3.small.search"
    instance_count: int = Field(default=1, ge=1, le=10)
    volume_gb: int = Field(default=20, ge=10, le=1024)
    metrics_retention_days: int = Field(default=30, ge=1)


class AwsSettings(StrictModel):
    home_region: str | None = None
    opensearch: OpenSearchSettings = OpenSearchSettings()
