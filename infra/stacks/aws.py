"""Everything ``backend: aws`` declares, wired from typed settings.

One ``aws.Provider`` per region is passed down to that region's components; nothing reads an
ambient region. Per region: a network, an archive bucket, an image registry and compute nodes.
Once, in the home region (or per region, by ``aws.opensearch.placement``): the search domain(s);
and, unless the orchestrator is external, a self-hosted orchestrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import naming
from infra.cloudinit import Release
from infra.components.aws_archive import RegionArchive, RegionArchiveArgs
from infra.components.aws_network import AZ_COUNT, RegionNetwork, RegionNetworkArgs
from infra.components.aws_nodes import JoinSettings, NodePlacement, RegionNodes, RegionNodesArgs
from infra.components.aws_orchestrator import OrchestratorArgs, SelfHostedOrchestrator
from infra.components.aws_registry import RegionRegistry, RegionRegistryArgs
from infra.components.aws_search import SearchDomain, SearchDomainArgs, domain_name
from infra.settings import (
    ConfigError,
    OrchestratorMode,
    RegionSettings,
    Secrets,
    Settings,
)
from infra.settings_aws import SearchPlacement


@dataclass(frozen=True)
class _Region:
    """What the stack knows about a region before declaring anything in it."""

    settings: RegionSettings
    provider: aws.Provider
    zones: tuple[str, ...]
    ami_id: str


def declare_aws(settings: Settings, secrets: Secrets) -> dict[str, pulumi.Input[Any]]:
    """Declare the AWS backend and answer the stack outputs."""
    prefix = naming.stack_prefix(settings.project, settings.stack)
    regions = {r.name: _look_up_region(settings, r) for r in settings.regions}
    home = regions[settings.home_region]
    identity = aws.get_caller_identity(opts=pulumi.InvokeOptions(provider=home.provider))
    release = Release(version=settings.versions.bacalhau, sha256=settings.aws.bacalhau_sha256)

    networks = {
        name: RegionNetwork(
            f"{name}-network",
            RegionNetworkArgs(vpc_cidr=region.settings.vpc_cidr, availability_zones=region.zones),
            opts=pulumi.ResourceOptions(providers=[region.provider]),
        )
        for name, region in regions.items()
    }
    join, orchestrator, api_url = _declare_orchestrator(
        settings, secrets, home, networks[home.settings.name], release, prefix
    )
    searches = _declare_search(settings, regions, identity)

    outputs: dict[str, dict[str, Any]] = {
        "buckets": {},
        "s3Endpoints": {},
        "opensearchUrls": {},
        "dashboardsUrls": {},
        "ecrRepositories": {},
    }
    for name, region in regions.items():
        network = networks[name]
        search = searches.get(name) or searches[home.settings.name]
        archive, registry = _declare_region(
            settings, region, network, search, join, release, prefix, identity.account_id
        )
        if orchestrator is not None:
            orchestrator.allow_nats_from(name, network.nat_public_ip)
        outputs["buckets"][name] = archive.bucket_name
        outputs["s3Endpoints"][name] = f"https://s3.{name}.amazonaws.com"
        outputs["opensearchUrls"][name] = search.url
        outputs["dashboardsUrls"][name] = search.dashboards_url
        outputs["ecrRepositories"][name] = registry.repository_urls

    return {
        "backend": "aws",
        "homeRegion": home.settings.name,
        "orchestratorApiUrl": api_url,
        "orchestratorNatsUrl": join.nats_url,
        "archivePrefix": settings.archive.prefix,
        **outputs,
        "opensearchMasterUser": next(iter(searches.values())).master_user,
        "opensearchMasterPasswords": {
            name: search.master_password for name, search in searches.items()
        },
        "opensearchRetentionDays": settings.aws.opensearch.metrics_retention_days,
    }


def _look_up_region(settings: Settings, region: RegionSettings) -> _Region:
    provider = aws.Provider(
        f"aws-{region.name}",
        region=region.name,
        default_tags=aws.ProviderDefaultTagsArgs(
            tags={
                "project": settings.project,
                "stack": settings.stack,
                "region": region.name,
                "managed-by": "pulumi",
            }
        ),
    )
    invoke = pulumi.InvokeOptions(provider=provider)
    zones = aws.get_availability_zones(state="available", opts=invoke).names
    if len(zones) < AZ_COUNT:
        raise ConfigError(f"bacalhau-logs:regions: {region.name} has fewer than {AZ_COUNT} AZs")
    ami = aws.ec2.get_ami(
        most_recent=True,
        owners=[settings.aws.ami.owner],
        filters=[
            aws.ec2.GetAmiFilterArgs(name="name", values=[settings.aws.ami.name_pattern]),
            aws.ec2.GetAmiFilterArgs(name="architecture", values=["x86_64"]),
        ],
        opts=invoke,
    )
    return _Region(
        settings=region, provider=provider, zones=tuple(sorted(zones)[:AZ_COUNT]), ami_id=ami.id
    )


def _declare_orchestrator(
    settings: Settings,
    secrets: Secrets,
    home: _Region,
    network: RegionNetwork,
    release: Release,
    prefix: str,
) -> tuple[JoinSettings, SelfHostedOrchestrator | None, pulumi.Input[str]]:
    config = settings.orchestrator
    if config.mode is OrchestratorMode.EXTERNAL:
        # parse_settings already refused external mode without a token or URLs.
        if secrets.orchestrator_token is None or not config.nats_url or not config.api_url:
            raise ConfigError("bacalhau-logs:orchestratorToken: required in external mode")
        # An external orchestrator (e.g. Expanso Cloud) has a publicly trusted certificate.
        join = JoinSettings(
            nats_url=config.nats_url,
            token=secrets.orchestrator_token,
            ca=None,
            ca_parameter_arn=None,
        )
        return join, None, config.api_url
    orchestrator = SelfHostedOrchestrator(
        "orchestrator",
        OrchestratorArgs(
            region=home.settings.name,
            env=settings.stack,
            vpc_id=network.vpc.id,
            public_subnet_id=network.public_subnet_id,
            ami_id=home.ami_id,
            instance_type=settings.aws.orchestrator_instance_type,
            root_volume_gb=settings.aws.root_volume_gb,
            release=release,
            ca_parameter_name=f"/{prefix}/orchestrator-ca",
            api_allowed_cidrs=settings.aws.api_allowed_cidrs,
        ),
        opts=pulumi.ResourceOptions(providers=[home.provider]),
    )
    join = JoinSettings(
        nats_url=orchestrator.nats_url,
        token=orchestrator.token,
        ca=orchestrator.ca,
        ca_parameter_arn=orchestrator.ca_parameter.arn,
    )
    return join, orchestrator, orchestrator.api_url


def _declare_search(
    settings: Settings, regions: dict[str, _Region], identity: aws.GetCallerIdentityResult
) -> dict[str, SearchDomain]:
    search = settings.aws.opensearch
    per_region = search.placement is SearchPlacement.PER_REGION
    placed = regions.values() if per_region else [regions[settings.home_region]]
    domains = {}
    for region in placed:
        name = region.settings.name
        try:
            physical = domain_name(settings.stack, name if per_region else None)
        except ValueError as error:
            raise ConfigError(f"bacalhau-logs:aws.opensearch.placement: {error}") from None
        domains[name] = SearchDomain(
            f"{name}-search" if per_region else "search",
            SearchDomainArgs(
                domain_name=physical,
                region=name,
                search=search,
                stack=settings.stack,
                account_id=identity.account_id,
                admin_arns=(identity.arn, *settings.aws.search_admin_arns),
            ),
            opts=pulumi.ResourceOptions(providers=[region.provider]),
        )
    return domains


def _declare_region(
    settings: Settings,
    region: _Region,
    network: RegionNetwork,
    search: SearchDomain,
    join: JoinSettings,
    release: Release,
    prefix: str,
    account_id: str,
) -> tuple[RegionArchive, RegionRegistry]:
    name = region.settings.name
    opts = pulumi.ResourceOptions(providers=[region.provider])
    archive = RegionArchive(
        f"{name}-archive",
        RegionArchiveArgs(
            bucket_name=naming.bucket_name(settings.project, settings.stack, name, account_id),
            archive=settings.archive,
            encryption=settings.aws.archive_encryption,
        ),
        opts=opts,
    )
    registry = RegionRegistry(
        f"{name}-registry",
        RegionRegistryArgs(name_prefix=prefix, force_delete=settings.archive.destroy_with_stack),
        opts=opts,
    )
    placements = [
        NodePlacement(
            name=naming.node_name(settings.project, settings.stack, name, index),
            subnet_id=network.private_subnet_ids[(index - 1) % len(network.private_subnet_ids)],
            availability_zone=network.availability_zones[(index - 1) % len(region.zones)],
        )
        for index in range(1, region.settings.nodes + 1)
    ]
    RegionNodes(
        f"{name}-nodes",
        RegionNodesArgs(
            region=name,
            env=settings.stack,
            stack=settings.stack,
            vpc_id=network.vpc.id,
            placements=placements,
            instance_type=region.settings.instance_type,
            ami_id=region.ami_id,
            root_volume_gb=settings.aws.root_volume_gb,
            release=release,
            join=join,
            ecr_registry=f"{account_id}.dkr.ecr.{name}.amazonaws.com",
            bucket_arn=archive.bucket_arn,
            archive_prefix=settings.archive.prefix,
            kms_key_arn=archive.kms_key_arn,
            repository_arns=list(registry.repository_arns.values()),
            search_domain_arns=[search.domain_arn],
        ),
        opts=opts,
    )
    return archive, registry
