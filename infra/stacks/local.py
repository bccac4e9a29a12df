"""The local (Docker) backend: the whole log system on one machine, no cloud account needed."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pulumi_docker as docker

from infra.components.local_common import LocalContext
from infra.components.local_orchestrator import LocalOrchestrator, LocalOrchestratorArgs
from infra.components.local_region import NODE_ENV, LocalRegion, LocalRegionArgs
from infra.components.local_registry import LocalRegistry, LocalRegistryArgs
from infra.components.local_search import LocalSearch, LocalSearchArgs
from infra.components.local_storage import LocalStorage, LocalStorageArgs
from infra.images import stack_images
from infra.naming import stack_prefix
from infra.settings import OrchestratorMode, Secrets, Settings
from infra.stacks.shared import (
    JobImages,
    RegionEndpoints,
    declare_region_jobs,
    declare_search_bootstrap,
)


def declare_local(settings: Settings, secrets: Secrets) -> dict[str, Any]:
    """Declare every resource of a ``backend: docker`` stack; answer the stack outputs."""
    prefix = stack_prefix(settings.project, settings.stack)
    network = docker.Network(
        "network",
        name=f"{prefix}-net",
        driver="bridge",
        labels=[docker.NetworkLabelArgs(label="env", value=settings.stack)],
    )
    context = LocalContext(settings.project, settings.stack, network.name)

    api_url: pulumi.Input[str]
    nats_url: pulumi.Input[str]
    node_nats_url: pulumi.Input[str]
    token: pulumi.Input[str]
    api_key_output: dict[str, Any] = {}
    if settings.orchestrator.mode is OrchestratorMode.SELF_HOSTED:
        orchestrator = LocalOrchestrator(
            "orchestrator", LocalOrchestratorArgs(context, settings.versions.bacalhau)
        )
        api_url, nats_url = orchestrator.api_url, orchestrator.nats_url
        node_nats_url, token = orchestrator.internal_nats_url, orchestrator.token
        # The self-hosted API accepts only the key it generated (nodeconfig.api_auth).
        secrets = dataclasses.replace(secrets, orchestrator_api_key=orchestrator.api_key)
        api_key_output = {"orchestratorApiKey": orchestrator.api_key}
    else:
        # Settings validation guarantees both URLs and the token exist in external mode.
        assert settings.orchestrator.api_url and settings.orchestrator.nats_url
        assert secrets.orchestrator_token is not None
        api_url = settings.orchestrator.api_url
        nats_url = node_nats_url = settings.orchestrator.nats_url
        token = secrets.orchestrator_token

    storage = LocalStorage(
        "storage",
        LocalStorageArgs(
            context,
            regions=settings.region_names,
            destroy_with_stack=settings.archive.destroy_with_stack,
        ),
    )
    search = LocalSearch("search", LocalSearchArgs(context))
    registry = LocalRegistry(
        "registry",
        LocalRegistryArgs(context, images=stack_images(settings.versions), tag=settings.stack),
    )
    regions = {
        region.name: LocalRegion(
            f"region-{region.name}",
            LocalRegionArgs(
                context,
                region=region.name,
                nodes=region.nodes,
                bacalhau_version=settings.versions.bacalhau,
                orchestrator_nats_url=node_nats_url,
                token=token,
                s3_access_key=storage.access_key,
                s3_secret_key=storage.secret_key,
            ),
        )
        for region in settings.regions
    }
    declare_search_bootstrap(
        "search-bootstrap",
        opensearch_url=search.url,
        dashboards_url=search.dashboards_url,
        retention_days=settings.aws.opensearch.metrics_retention_days,
    )
    jobs = declare_region_jobs(
        settings,
        secrets,
        orchestrator_endpoint=api_url,
        images=JobImages(
            agent=registry.references["agent"], logstash=registry.references["logstash"]
        ),
        endpoints={
            name: RegionEndpoints(
                bucket=storage.buckets[name],
                # Jobs run with host networking inside the nodes, on the stack network.
                s3_endpoint=storage.internal_endpoint,
                s3_region="us-east-1",
                opensearch_url=search.internal_url,
            )
            for name in settings.region_names
        },
        node_env=NODE_ENV,
        after={name: [region] for name, region in regions.items()},
    )
    return {
        "backend": settings.backend.value,
        "orchestratorApiUrl": api_url,
        "orchestratorNatsUrl": nats_url,
        "s3Endpoint": storage.endpoint,
        "minioConsoleUrl": storage.console_url,
        # Secret outputs: shown only with `pulumi stack output --show-secrets`.
        **api_key_output,
        "minioAccessKey": storage.access_key,
        "minioSecretKey": storage.secret_key,
        "buckets": storage.buckets,
        "opensearchUrl": search.url,
        "dashboardsUrl": search.dashboards_url,
        "images": registry.references,
        "nodes": {name: region.node_names for name, region in regions.items()},
        "jobs": {
            name: {kind: job.job_id for kind, job in region_jobs.jobs.items()}
            for name, region_jobs in jobs.items()
        },
    }
