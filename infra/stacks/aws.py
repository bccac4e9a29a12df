"""Everything ``backend: aws`` declares, wired from typed settings.

One ``aws.Provider`` per region is passed down to that region's components; nothing reads an
ambient region. Per region: a network, an archive bucket, an image registry and compute nodes.
Once, in the home region (or per region, by ``aws.opensearch.placement``): the search domain(s)
with their bootstrap (SigV4-signed); and, unless the orchestrator is external, a self-hosted
orchestrator. Per region again: the stack's images in that region's ECR, the region's metrics
writer role in the domain it writes to, and the region's jobs. Nothing shared lists the regions,
so adding one changes no existing resource.

Jobs are registered from where ``pulumi up`` runs, so the orchestrator's API must be reachable
from there: an external one at its ``apiUrl``; a self-hosted one only from ``aws.apiAllowedCidrs``
(TLS verified against the certificate it publishes in SSM). A self-hosted stack with no allowed
CIDR must say ``aws.registerJobs: false`` and submit jobs itself (e.g. over an SSM port forward).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import naming
from infra.bacalhau.trust import CaSource
from infra.cloudinit import Release
from infra.components.aws_archive import RegionArchive, RegionArchiveArgs
from infra.components.aws_images import RegionImages, RegionImagesArgs
from infra.components.aws_network import AZ_COUNT, RegionNetwork, RegionNetworkArgs
from infra.components.aws_nodes import (
    JoinSettings,
    NodeImages,
    NodePlacement,
    RegionNodes,
    RegionNodesArgs,
)
from infra.components.aws_orchestrator import OrchestratorArgs, SelfHostedOrchestrator
from infra.components.aws_registry import RegionRegistry, RegionRegistryArgs
from infra.components.aws_search import SearchDomain, SearchDomainArgs, domain_name
from infra.components.jobs import RegionJobs
from infra.images import stack_images
from infra.opensearch_setup import SearchWriter, SearchWriterArgs
from infra.settings import (
    ConfigError,
    OrchestratorMode,
    RegionSettings,
    Secrets,
    Settings,
)
from infra.settings_aws import SearchPlacement
from infra.stacks.shared import (
    JobImages,
    RegionEndpoints,
    declare_region_jobs,
    declare_search_bootstrap,
)


@dataclass(frozen=True)
class _Region:
    """What the stack knows about a region before declaring anything in it."""

    settings: RegionSettings
    provider: aws.Provider
    zones: tuple[str, ...]
    ami_id: str


@dataclass(frozen=True)
class _Declared:
    """What a region's jobs and its search writer need from the region."""

    archive: RegionArchive
    registry: RegionRegistry
    nodes: RegionNodes
    images: RegionImages


def declare_aws(settings: Settings, secrets: Secrets) -> dict[str, pulumi.Input[Any]]:
    """Declare the AWS backend and answer the stack outputs."""
    _check_jobs_can_be_registered(settings)
    prefix = naming.stack_prefix(settings.project, settings.stack)
    regions = {r.name: _look_up_region(settings, r) for r in settings.regions}
    home = regions[settings.home_region]
    home_invoke = pulumi.InvokeOptions(provider=home.provider)
    identity = aws.get_caller_identity(opts=home_invoke)
    # An assumed role's session ARN names no IAM principal; its issuer (the role) does.
    deployer = aws.iam.get_session_context(arn=identity.arn, opts=home_invoke).issuer_arn
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
    if orchestrator is not None:
        # The self-hosted API accepts only the key it generated (nodeconfig.api_auth).
        secrets = dataclasses.replace(secrets, orchestrator_api_key=orchestrator.api_key)
    searches = _declare_search(settings, regions, identity.account_id, deployer)

    outputs: dict[str, dict[str, Any]] = {
        "buckets": {},
        "s3Endpoints": {},
        "opensearchUrls": {},
        "dashboardsUrls": {},
        "ecrRepositories": {},
        "images": {},
        "nodeRoleArns": {},
        "nodes": {},
    }
    declared: dict[str, _Declared] = {}
    search_of: dict[str, SearchDomain] = {}
    for name, region in regions.items():
        network = networks[name]
        search = search_of[name] = searches.get(name) or searches[home.settings.name]
        declared[name] = _declare_region(
            settings, region, network, search, join, release, prefix, identity.account_id
        )
        if orchestrator is not None:
            orchestrator.allow_nats_from(name, network.nat_public_ip)
        outputs["buckets"][name] = declared[name].archive.bucket_name
        outputs["s3Endpoints"][name] = _s3_endpoint(name)
        outputs["opensearchUrls"][name] = search.url
        outputs["dashboardsUrls"][name] = search.dashboards_url
        outputs["ecrRepositories"][name] = declared[name].registry.repository_urls
        outputs["images"][name] = declared[name].images.references
        outputs["nodeRoleArns"][name] = declared[name].nodes.role.arn
        # Node names are their hostnames and `host` labels: operators scope queries by them.
        outputs["nodes"][name] = [
            naming.node_name(settings.project, settings.stack, name, index)
            for index in range(1, region.settings.nodes + 1)
        ]
    _declare_search_bootstraps(settings, searches)
    _declare_search_writers(search_of, declared)
    jobs = (
        _declare_jobs(settings, secrets, api_url, orchestrator, search_of, declared)
        if settings.aws.register_jobs
        else {}
    )

    return {
        "backend": "aws",
        **_api_key_output(orchestrator),
        "homeRegion": home.settings.name,
        "orchestratorApiUrl": api_url,
        "orchestratorNatsUrl": join.nats_url,
        "archivePrefix": settings.archive.prefix,
        **outputs,
        "opensearchMasterUserArn": deployer,
        "opensearchRetentionDays": settings.aws.opensearch.metrics_retention_days,
        "jobs": {
            name: {kind: job.job_id for kind, job in region_jobs.jobs.items()}
            for name, region_jobs in jobs.items()
        },
    }


def _s3_endpoint(region: str) -> str:
    return f"https://s3.{region}.amazonaws.com"


def _check_jobs_can_be_registered(settings: Settings) -> None:
    aws_settings = settings.aws
    if (
        settings.orchestrator.mode is OrchestratorMode.SELF_HOSTED
        and aws_settings.register_jobs
        and not aws_settings.api_allowed_cidrs
    ):
        raise ConfigError(
            "bacalhau-logs:aws.apiAllowedCidrs: `pulumi up` registers the jobs through the "
            "self-hosted orchestrator's API, which is closed to every address not listed here; "
            "add the address you deploy from (e.g. 203.0.113.7/32), or set "
            "aws.registerJobs: false and submit jobs/*.yaml yourself over an SSM port forward"
        )


def _declare_search_bootstraps(settings: Settings, searches: dict[str, SearchDomain]) -> None:
    """One bootstrap per domain, signed as the deployer (the FGAC master user)."""
    per_region = settings.aws.opensearch.placement is SearchPlacement.PER_REGION
    for home_of_domain, search in searches.items():
        declare_search_bootstrap(
            f"{home_of_domain}-search-bootstrap" if per_region else "search-bootstrap",
            opensearch_url=search.url,
            dashboards_url=search.dashboards_url,
            retention_days=settings.aws.opensearch.metrics_retention_days,
            aws_region=search.region,
            opts=pulumi.ResourceOptions(depends_on=[search]),
        )


def _declare_search_writers(
    search_of: dict[str, SearchDomain], declared: dict[str, _Declared]
) -> None:
    """Per region, its own writer role in the domain it writes to, mapped to its node role only
    and signed as the deployer: one shared mapping would change whenever a region is added."""
    for name, region in declared.items():
        search = search_of[name]
        SearchWriter(
            f"{name}-search-writer",
            SearchWriterArgs(
                opensearch_url=search.url,
                region=name,
                role_arn=region.nodes.role.arn,
                aws_region=search.region,
            ),
            opts=pulumi.ResourceOptions(depends_on=[search]),
        )


def _declare_jobs(
    settings: Settings,
    secrets: Secrets,
    api_url: pulumi.Input[str],
    orchestrator: SelfHostedOrchestrator | None,
    search_of: dict[str, SearchDomain],
    declared: dict[str, _Declared],
) -> dict[str, RegionJobs]:
    ca = (
        CaSource(parameter=orchestrator.ca.name, region=orchestrator.ca.region)
        if orchestrator is not None
        else None
    )
    # Jobs wait for their region's nodes and, when self-hosted, for the orchestrator itself.
    shared_waits: list[pulumi.Resource] = [orchestrator] if orchestrator is not None else []
    return declare_region_jobs(
        settings,
        secrets,
        orchestrator_endpoint=api_url,
        # Each region's nodes pull from their own region's registry.
        images={
            name: JobImages(
                agent=region.nodes.image_references["agent"],
                logstash=region.nodes.image_references["logstash"],
            )
            for name, region in declared.items()
        },
        endpoints={
            name: RegionEndpoints(
                bucket=region.archive.bucket_name,
                s3_endpoint=_s3_endpoint(name),
                s3_region=name,
                opensearch_url=search_of[name].url,
                opensearch_auth="aws_iam",
                opensearch_region=search_of[name].region,
            )
            for name, region in declared.items()
        },
        # Instance roles supply S3 and OpenSearch credentials: nodes define no env: variables.
        node_env=frozenset(),
        after={name: [region.nodes, *shared_waits] for name, region in declared.items()},
        orchestrator_ca=ca,
    )


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


def _api_key_output(orchestrator: SelfHostedOrchestrator | None) -> dict[str, Any]:
    # The key is secret: shown only with `pulumi stack output --show-secrets`; infra.ops reads
    # it through the Automation API.
    if orchestrator is None:
        return {}
    return {
        "orchestratorApiKey": orchestrator.api_key,
        # Public: where infra.ops fetches the certificate the API's TLS is verified against.
        "orchestratorCa": {"parameter": orchestrator.ca.name, "region": orchestrator.ca.region},
    }


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
    settings: Settings, regions: dict[str, _Region], account_id: str, deployer: str
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
                account_id=account_id,
                master_user_arn=deployer,
                admin_arns=(deployer, *settings.aws.search_admin_arns),
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
) -> _Declared:
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
    images = RegionImages(
        f"{name}-images",
        RegionImagesArgs(
            images=stack_images(settings.versions),
            repository_urls=registry.repository_urls,
            registry_id=account_id,
            stack=settings.stack,
            provider=region.provider,
        ),
        opts=opts,
    )
    nodes = RegionNodes(
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
            images=NodeImages(
                references=images.references,
                parameter_name=naming.image_list_parameter(settings.project, settings.stack, name),
            ),
            bucket_arn=archive.bucket_arn,
            archive_prefix=settings.archive.prefix,
            kms_key_arn=archive.kms_key_arn,
            repository_arns=list(registry.repository_arns.values()),
            search_domain_arns=[search.domain_arn],
        ),
        opts=opts,
    )
    return _Declared(archive=archive, registry=registry, nodes=nodes, images=images)
