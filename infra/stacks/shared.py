"""What both backends declare the same way: the region jobs (with canary ordering) and the
search bootstrap (index templates, metric retention, dashboards)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from infra.bacalhau.trust import CaSource
from infra.components.jobs import RegionJobs, RegionJobsArgs, canary_dependencies
from infra.opensearch_setup import SearchBootstrap, SearchBootstrapArgs
from infra.paths import LOGSTASH_DIR
from infra.settings import Secrets, Settings


@dataclass(frozen=True)
class RegionEndpoints:
    """How jobs running on a region's nodes reach its bucket and the search cluster."""

    bucket: pulumi.Input[str]
    s3_endpoint: pulumi.Input[str]
    s3_region: str
    opensearch_url: pulumi.Input[str]
    # "aws_iam": Logstash signs its OpenSearch requests (SigV4) for ``opensearch_region``.
    opensearch_auth: str = ""
    opensearch_region: str = ""


@dataclass(frozen=True)
class JobImages:
    agent: pulumi.Input[str]
    logstash: pulumi.Input[str]


def declare_region_jobs(
    settings: Settings,
    secrets: Secrets,
    *,
    orchestrator_endpoint: pulumi.Input[str],
    images: JobImages | Mapping[str, JobImages],
    endpoints: Mapping[str, RegionEndpoints],
    node_env: frozenset[str],
    after: Mapping[str, Sequence[pulumi.Resource]] | None = None,
    orchestrator_ca: CaSource | None = None,
) -> dict[str, RegionJobs]:
    """One RegionJobs per region; with a canary region, every other region's jobs wait for it.

    ``images`` is one set for every region, or a set per region (a registry in each region).
    ``node_env`` names the ``env:`` variables the backend's nodes define. ``after`` maps a
    region to resources its jobs wait for (its compute nodes, say), so that a job is not
    submitted before the nodes that run it are being created. ``orchestrator_ca`` says where a
    self-hosted orchestrator publishes the certificate its API's TLS is verified against.
    """
    waits_for = canary_dependencies(settings.region_names, settings.jobs.canary_region)
    declared: dict[str, RegionJobs] = {}
    # Regions without prerequisites (the canary, or all when there is none) are declared first.
    for region in sorted(settings.region_names, key=lambda name: len(waits_for[name])):
        region_endpoints = endpoints[region]
        region_images = images if isinstance(images, JobImages) else images[region]
        declared[region] = RegionJobs(
            f"jobs-{region}",
            RegionJobsArgs(
                region=region,
                env=settings.stack,
                orchestrator_endpoint=orchestrator_endpoint,
                bucket=region_endpoints.bucket,
                archive_prefix=settings.archive.prefix,
                s3_endpoint=region_endpoints.s3_endpoint,
                s3_region=region_endpoints.s3_region,
                opensearch_url=region_endpoints.opensearch_url,
                opensearch_auth=region_endpoints.opensearch_auth,
                opensearch_region=region_endpoints.opensearch_region,
                orchestrator_ca=orchestrator_ca,
                agent_image=region_images.agent,
                logstash_image=region_images.logstash,
                aggregate_duration=settings.jobs.aggregate_duration_seconds,
                generator_enabled=settings.jobs.generator.enabled,
                log_rate=settings.jobs.generator.rate,
                api_key=secrets.orchestrator_api_key,
                node_env=node_env,
                depends_on=[
                    *(after or {}).get(region, ()),
                    *(declared[other] for other in waits_for[region]),
                ],
            ),
        )
    return declared


def search_content() -> tuple[dict[str, str], str]:
    """The index templates (name -> JSON) and dashboards (saved-objects NDJSON) in logstash/."""
    templates = {
        path.stem: path.read_text() for path in sorted((LOGSTASH_DIR / "templates").glob("*.json"))
    }
    dashboards = "".join(
        path.read_text() for path in sorted((LOGSTASH_DIR / "dashboards").glob("*.ndjson"))
    )
    return templates, dashboards


def declare_search_bootstrap(
    name: str,
    *,
    opensearch_url: pulumi.Input[str],
    dashboards_url: pulumi.Input[str],
    retention_days: int,
    username: pulumi.Input[str] | None = None,
    password: pulumi.Input[str] | None = None,
    aws_region: str | None = None,
    opts: pulumi.ResourceOptions | None = None,
) -> SearchBootstrap:
    """With ``aws_region``, requests are SigV4-signed for that region (AWS OpenSearch Service)."""
    templates, dashboards = search_content()
    return SearchBootstrap(
        name,
        SearchBootstrapArgs(
            opensearch_url=opensearch_url,
            dashboards_url=dashboards_url,
            templates=templates,
            dashboards_ndjson=dashboards,
            metrics_retention_days=retention_days,
            username=username,
            password=password,
            aws_region=aws_region,
        ),
        opts,
    )
