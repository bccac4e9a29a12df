"""A self-hosted Bacalhau orchestrator on EC2 in the home region."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra import aws_policies, cloudinit, nodeconfig
from infra.components.aws_common import (
    egress_only_security_group,
    encrypted_gp3_root,
    imds_v2_only,
    ssm_instance_profile,
)


@dataclass(frozen=True)
class OrchestratorArgs:
    region: str
    env: str
    vpc_id: pulumi.Input[str]
    public_subnet_id: pulumi.Input[str]
    ami_id: str
    instance_type: str
    root_volume_gb: int
    release: cloudinit.Release
    ca_parameter_name: str
    api_allowed_cidrs: Sequence[str]


class SelfHostedOrchestrator(pulumi.ComponentResource):
    """Creates a generated node token and API key, an SSM parameter that carries the orchestrator's
    self-signed certificate to the compute nodes, an IAM role (publish that parameter, SSM core),
    a security group that admits NATS only from the compute regions' NAT addresses (one rule per
    region, see ``allow_nats_from``) and the API only from ``api_allowed_cidrs``, a network
    interface holding an Elastic IP, and the instance (IMDSv2, encrypted gp3, secret user data).

    Why public addresses and not VPC peering: compute regions reach the orchestrator across
    regions, where security groups cannot reference each other. Each region's nodes leave through
    one NAT gateway with a fixed Elastic IP, so a /32 rule per region admits exactly those nodes,
    needs no non-overlapping VPC CIDRs, and adding a region adds one rule without touching others.
    NATS and the API are TLS-only and NATS also requires the token.
    """

    def __init__(
        self, name: str, args: OrchestratorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:aws:SelfHostedOrchestrator", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        token = random.RandomPassword(f"{name}-token", length=48, special=False, opts=self._child)
        self.token: pulumi.Output[str] = pulumi.Output.secret(token.result)
        # The API's one user (nodeconfig.api_auth); letters and digits so it never looks like a JWT.
        api_key = random.RandomPassword(
            f"{name}-api-key", length=48, special=False, opts=self._child
        )
        self.api_key: pulumi.Output[str] = pulumi.Output.secret(api_key.result)
        self.ca_parameter = aws.ssm.Parameter(
            f"{name}-ca",
            name=args.ca_parameter_name,
            type="String",
            value=cloudinit.CA_PENDING,
            description="Self-signed certificate of the bacalhau-logs orchestrator (public)",
            # The instance writes the real certificate at boot; Pulumi only owns the parameter.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"]),
        )
        self.ca = cloudinit.CaParameter(name=args.ca_parameter_name, region=args.region)
        self.security_group = egress_only_security_group(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="bacalhau-logs orchestrator: NATS from compute NATs, API from allow-list",
            opts=self._child,
        )
        for index, cidr in enumerate(args.api_allowed_cidrs, start=1):
            self._ingress(f"{name}-api-{index}", cidr, nodeconfig.API_PORT)
        # The Elastic IP sits on a network interface made before the instance, so the instance
        # boots with its address (and internet access for the install) already in place.
        interface = aws.ec2.NetworkInterface(
            f"{name}-eni",
            subnet_id=args.public_subnet_id,
            security_groups=[self.security_group.id],
            opts=self._child,
        )
        address = aws.ec2.Eip(
            f"{name}-eip", domain="vpc", network_interface=interface.id, opts=self._child
        )
        self.public_ip: pulumi.Output[str] = address.public_ip
        instance = self._create_instance(args, interface, address.public_ip)
        self.nats_url: pulumi.Output[str] = pulumi.Output.concat(
            "nats://", address.public_ip, f":{nodeconfig.NATS_PORT}"
        )
        self.api_url: pulumi.Output[str] = pulumi.Output.concat(
            "https://", address.public_ip, f":{nodeconfig.API_PORT}"
        )
        self.register_outputs(
            {"natsUrl": self.nats_url, "apiUrl": self.api_url, "instanceId": instance.id}
        )

    def allow_nats_from(self, region: str, public_ip: pulumi.Input[str]) -> None:
        """Admit one compute region's NAT address to NATS (its own rule, named by the region)."""
        cidr = pulumi.Output.concat(public_ip, "/32")
        self._ingress(f"{self._name}-nats-from-{region}", cidr, nodeconfig.NATS_PORT)

    def _ingress(self, name: str, cidr: pulumi.Input[str], port: int) -> None:
        aws.vpc.SecurityGroupIngressRule(
            name,
            security_group_id=self.security_group.id,
            cidr_ipv4=cidr,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            opts=self._child,
        )

    def _create_instance(
        self,
        args: OrchestratorArgs,
        interface: aws.ec2.NetworkInterface,
        public_ip: pulumi.Output[str],
    ) -> aws.ec2.Instance:
        name = self._name
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(aws_policies.assume_role()),
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=self.ca_parameter.arn.apply(
                lambda arn: json.dumps(aws_policies.orchestrator_policy(ca_parameter_arn=arn))
            ),
            opts=self._child,
        )
        profile = ssm_instance_profile(name, role=role, opts=self._child)
        labels = {"region": args.region, "env": args.env, "role": "orchestrator"}

        def render(values: list[str]) -> str:
            token, api_key, address = values
            config = nodeconfig.orchestrator_config(
                token=token,
                api_key=api_key,
                labels=labels,
                # Self-signed, so the certificate is its own CA (cloudinit._publish_ca_script).
                tls=nodeconfig.ServerTls(
                    cert_file=cloudinit.ORCHESTRATOR_CERT_PATH,
                    key_file=cloudinit.ORCHESTRATOR_KEY_PATH,
                    ca_file=cloudinit.ORCHESTRATOR_CERT_PATH,
                ),
                api_tls=True,
            )
            return cloudinit.orchestrator_user_data(
                release=args.release,
                node_config_yaml=nodeconfig.to_yaml(config),
                ca=self.ca,
                public_ip=address,
            )

        rendered: pulumi.Output[str] = pulumi.Output.all(self.token, self.api_key, public_ip).apply(
            render
        )
        user_data: pulumi.Output[str] = pulumi.Output.secret(rendered)
        return aws.ec2.Instance(
            f"{name}-instance",
            ami=args.ami_id,
            instance_type=args.instance_type,
            primary_network_interface=aws.ec2.InstancePrimaryNetworkInterfaceArgs(
                network_interface_id=interface.id
            ),
            iam_instance_profile=profile.name,
            metadata_options=imds_v2_only(hop_limit=1),
            root_block_device=encrypted_gp3_root(args.root_volume_gb),
            user_data=user_data,
            user_data_replace_on_change=True,
            tags={"Name": name},
            opts=self._child,
        )
