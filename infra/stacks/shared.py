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

# How long the canary region's job creates and updates wait for the new version to settle on
# every node of the region before the other regions go (see BacalhauJob): long enough for nodes
# still booting, an image pull and a Logstash start. A version counts as settled once every
# execution has stayed placed, none failing, for the settle time, which covers Logstash's start-up
# and pipeline load, where a bad image or configuration fails.
CANARY_ROLLOUT_TIMEOUT = 900.0
CANARY_ROLLOUT_SETTLE = 120.0


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

    A Bacalhau update returns before anything runs, so with a canary its jobs also wait (up to
    ``CANARY_ROLLOUT_TIMEOUT``) until their new version has settled on the canary's nodes, and a
    failure there stops the rollout before any other region is touched. Without a canary, all
    regions roll out together and nothing waits.

    ``images`` is one set for every region, or a set per region (a registry in each region).
    ``node_env`` names the ``env:`` variables the backend's nodes define. ``after`` maps a
    region to resources its jobs wait for (its compute nodes, say), so that a job is not
    submitted before the nodes that run it are being created. ``orchestrator_ca`` says where a
    self-hosted orchestrator publishes the certificate its API's TLS is verified against.
    """
    canary = settings.jobs.canary_region
    waits_for = canary_dependencies(settings.region_names, canary)
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
                rollout_timeout=CANARY_ROLLOUT_TIMEOUT if region == canary else None,
                rollout_settle=CANARY_ROLLOUT_SETTLE if region == canary else None,
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
