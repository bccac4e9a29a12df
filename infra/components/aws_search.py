"""An OpenSearch Service domain for the aggregated metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import aws_policies
from infra.settings_aws import OpenSearchSettings
from infra.versions import OPENSEARCH_SERVICE_ENGINE

TLS_POLICY = "Policy-Min-TLS-1-2-PFS-2023-10"
_DOMAIN_NAME = re.compile(r"^[a-z][a-z0-9-]{2,27}$")


def domain_name(stack: str, region: str | None) -> str:
    """``bl-<stack>`` or ``bl-<stack>-<region>``; OpenSearch allows 3-28 characters."""
    name = f"bl-{stack}" if region is None else f"bl-{stack}-{region}"
    name = name.lower()
    if not _DOMAIN_NAME.match(name):
        raise ValueError(
            f"OpenSearch domain name '{name}' must be 3-28 lowercase letters, digits or '-'; "
            "shorten the stack name or use aws.opensearch.placement: home"
        )
    return name


@dataclass(frozen=True)
class SearchDomainArgs:
    domain_name: str
    region: str
    search: OpenSearchSettings
    stack: str
    account_id: str
    # The deploying identity's IAM role or user ARN (not an STS session ARN): FGAC's master user.
    master_user_arn: str
    admin_arns: Sequence[str]


class SearchDomain(pulumi.ComponentResource):
    """Creates an OpenSearch Service domain: encryption at rest, node-to-node encryption, HTTPS
    only with a TLS 1.2+ policy, fine-grained access control (FGAC), zone awareness when it has
    more than one node, and an access policy that lets in only this stack's compute nodes (by
    role tag) and the named admins.

    Access design. Two gates, both keyed on IAM identities, so every request is SigV4-signed and
    no password exists anywhere:
      1. the domain's access policy (IAM): the stack's node roles (by tag) and the admins only;
      2. FGAC (OpenSearch security): the deploying identity is the master user
         (``master_user_arn``, no internal user database), so it holds ``all_access`` and
         ``security_manager``. The stack's ``SearchWriter`` resources sign as that identity
         and create, per node region, a ``bacalhau_logs_writer_<region>`` role (write to
         ``bacalhau-logs-metrics-*`` only) mapped to that region's node role ARN alone as its
         backend role; nodes can do nothing else.
    People reach Dashboards as one of ``aws.searchAdminArns`` through a SigV4-signing proxy, or
    after adding SAML/Cognito and their own role mappings; the master user can map more roles.
    Changing who deploys changes the master user (an in-place domain update).

    Outputs ``url``, ``dashboards_url``, ``domain_arn`` and ``region`` for the bootstrap and the
    writers.
    """

    def __init__(
        self, name: str, args: SearchDomainArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:aws:SearchDomain", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        search = args.search
        zones = search.availability_zone_count
        # The access policy names the domain itself, so its ARN is built rather than read back.
        domain_arn = f"arn:aws:es:{args.region}:{args.account_id}:domain/{args.domain_name}"
        self.domain = aws.opensearch.Domain(
            f"{name}-domain",
            domain_name=args.domain_name,
            engine_version=OPENSEARCH_SERVICE_ENGINE,
            cluster_config=aws.opensearch.DomainClusterConfigArgs(
                instance_type=search.instance_type,
                instance_count=search.instance_count,
                zone_awareness_enabled=zones > 1,
                zone_awareness_config=(
                    aws.opensearch.DomainClusterConfigZoneAwarenessConfigArgs(
                        availability_zone_count=zones
                    )
                    if zones > 1
                    else None
                ),
            ),
            ebs_options=aws.opensearch.DomainEbsOptionsArgs(
                ebs_enabled=True, volume_type="gp3", volume_size=search.volume_gb
            ),
            encrypt_at_rest=aws.opensearch.DomainEncryptAtRestArgs(enabled=True),
            node_to_node_encryption=aws.opensearch.DomainNodeToNodeEncryptionArgs(enabled=True),
            domain_endpoint_options=aws.opensearch.DomainDomainEndpointOptionsArgs(
                enforce_https=True, tls_security_policy=TLS_POLICY
            ),
            advanced_security_options=aws.opensearch.DomainAdvancedSecurityOptionsArgs(
                enabled=True,
                # IAM only: an internal user database would need a password, and with this
                # access policy an unsigned (basic-auth) request never reaches FGAC anyway.
                internal_user_database_enabled=False,
                master_user_options=aws.opensearch.DomainAdvancedSecurityOptionsMasterUserOptionsArgs(
                    master_user_arn=args.master_user_arn
                ),
            ),
            access_policies=json.dumps(
                aws_policies.search_access_policy(
                    domain_arn=domain_arn,
                    account_id=args.account_id,
                    stack=args.stack,
                    admin_arns=args.admin_arns,
                )
            ),
            opts=child,
        )
        self.domain_arn = domain_arn
        self.url: pulumi.Output[str] = pulumi.Output.concat("https://", self.domain.endpoint)
        self.dashboards_url: pulumi.Output[str] = pulumi.Output.concat(
            "https://", self.domain.dashboard_endpoint
        )
        self.region = args.region
        self.register_outputs(
            {"url": self.url, "dashboardsUrl": self.dashboards_url, "domainArn": domain_arn}
        )
