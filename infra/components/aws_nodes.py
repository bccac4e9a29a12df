"""One region's Bacalhau compute nodes on EC2."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import aws_policies, cloudinit, nodeconfig
from infra.components.aws_common import (
    egress_only_security_group,
    encrypted_gp3_root,
    imds_v2_only,
    ssm_instance_profile,
)
from infra.components.aws_image_pull import NodeImagePull, NodeImagePullArgs


@dataclass(frozen=True)
class NodePlacement:
    name: str
    subnet_id: pulumi.Input[str]
    availability_zone: str


@dataclass(frozen=True)
class JoinSettings:
    """How nodes reach the orchestrator; the token is a secret Output."""

    nats_url: pulumi.Input[str]
    token: pulumi.Output[str]
    ca: cloudinit.CaParameter | None
    ca_parameter_arn: pulumi.Input[str] | None


@dataclass(frozen=True)
class NodeImages:
    """The images the region's jobs run, and the SSM parameter through which nodes learn them."""

    # Image name -> ECR reference by digest (RegionImages.references).
    references: Mapping[str, pulumi.Input[str]]
    # naming.image_list_parameter: /<stack prefix>/<region>/images
    parameter_name: str


@dataclass(frozen=True)
class RegionNodesArgs:
    region: str
    env: str
    stack: str
    vpc_id: pulumi.Input[str]
    placements: Sequence[NodePlacement]
    instance_type: str
    ami_id: str
    root_volume_gb: int
    release: cloudinit.Release
    join: JoinSettings
    ecr_registry: str
    images: NodeImages
    bucket_arn: pulumi.Input[str]
    archive_prefix: str
    kms_key_arn: pulumi.Input[str] | None
    repository_arns: Sequence[pulumi.Input[str]]
    search_domain_arns: Sequence[str]


class RegionNodes(pulumi.ComponentResource):
    """Creates an IAM role and instance profile (its own region's archive prefix, images and image
    list, search domain and the orchestrator CA, plus SSM core for shell-less access; no AWS keys
    anywhere), a security group with no ingress at all, an SSM parameter listing the region's
    images by digest, one EC2 instance per placement (IMDSv2 only, an encrypted gp3 root volume,
    no public IP, and cloud-config user data, a secret as it carries the node token, that
    installs Docker and the verified Bacalhau release, pulls the listed images and joins the
    orchestrator), and a ``NodeImagePull`` that has every node pull the images whenever they
    change. ``image_references`` are the images once on every node: jobs must use those.
    """

    image_references: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: RegionNodesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:aws:RegionNodes", name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        profile = self._create_identity()
        image_list = self._create_image_list()
        security_group = egress_only_security_group(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="bacalhau-logs compute nodes: no ingress, egress for NATS, S3, ECR",
            opts=self._child,
        )
        self.instances = [
            self._create_instance(placement, profile, security_group)
            for placement in args.placements
        ]
        pull = NodeImagePull(
            f"{name}-image-pull",
            NodeImagePullArgs(
                region=args.region,
                instance_ids=[instance.id for instance in self.instances],
                references=args.images.references,
                command=cloudinit.PULL_IMAGES_SCRIPT,
            ),
            # The list must be readable (parameter and permission) before the nodes pull it.
            pulumi.ResourceOptions(parent=self, depends_on=image_list),
        )
        self.image_references = {
            image: pull.references.apply(_pick(image)) for image in args.images.references
        }
        self.register_outputs(
            {
                "roleArn": self.role.arn,
                "securityGroupId": security_group.id,
                "instanceIds": [instance.id for instance in self.instances],
                "imageReferences": self.image_references,
            }
        )

    def _create_image_list(self) -> list[pulumi.Resource]:
        """The SSM parameter the nodes' pull script reads, and the role's right to read it."""
        name, images = self._name, self._args.images
        references = list(images.references.values())
        parameter = aws.ssm.Parameter(
            f"{name}-images",
            name=images.parameter_name,
            type="String",
            # One reference per line, sorted so that an unchanged set is an unchanged value.
            value=pulumi.Output.all(*references).apply(lambda refs: "\n".join(sorted(refs))),
            description="Images the bacalhau-logs compute nodes of this region pull, by digest",
            opts=self._child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-images-policy",
            role=self.role.id,
            policy=parameter.arn.apply(lambda arn: json.dumps(read_parameter_policy(arn))),
            opts=self._child,
        )
        return [parameter, policy]

    def _create_identity(self) -> aws.iam.InstanceProfile:
        name, args = self._name, self._args
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(aws_policies.assume_role()),
            # The OpenSearch access policies trust this tag, not a list of roles.
            tags={aws_policies.SEARCH_WRITER_TAG: args.stack},
            opts=self._child,
        )
        policy = pulumi.Output.all(
            args.bucket_arn,
            args.kms_key_arn,
            args.join.ca_parameter_arn,
            *args.repository_arns,
        ).apply(self._policy_json)
        aws.iam.RolePolicy(f"{name}-policy", role=self.role.id, policy=policy, opts=self._child)
        return ssm_instance_profile(name, role=self.role, opts=self._child)

    def _policy_json(self, values: list[Any]) -> str:
        bucket_arn, kms_key_arn, ca_parameter_arn, *repository_arns = values
        return json.dumps(
            aws_policies.compute_node_policy(
                bucket_arn=bucket_arn,
                prefix=self._args.archive_prefix,
                kms_key_arn=kms_key_arn,
                repository_arns=repository_arns,
                search_domain_arns=self._args.search_domain_arns,
                ca_parameter_arn=ca_parameter_arn,
            )
        )

    def _create_instance(
        self,
        placement: NodePlacement,
        profile: aws.iam.InstanceProfile,
        security_group: aws.ec2.SecurityGroup,
    ) -> aws.ec2.Instance:
        args = self._args
        labels = {
            "region": args.region,
            # Known at deploy time: each node is placed in a subnet of a chosen AZ, so no IMDS
            # lookup is needed at boot (and the label cannot drift from the placement).
            "availability-zone": placement.availability_zone,
            "env": args.env,
            "instance-type": args.instance_type,
            # Lets operators scope ops queries to single nodes (python -m infra.ops --host).
            "host": placement.name,
        }
        join = args.join

        def render(values: list[str]) -> str:
            nats_url, token = values
            config = nodeconfig.compute_config(
                orchestrators=[nats_url],
                token=token,
                labels=labels,
                tls_ca_cert=cloudinit.ORCHESTRATOR_CA_PATH if join.ca else None,
            )
            return cloudinit.compute_user_data(
                release=args.release,
                node_config_yaml=nodeconfig.to_yaml(config),
                images=cloudinit.ImageList(
                    name=args.images.parameter_name,
                    region=args.region,
                    registry=args.ecr_registry,
                ),
                ca=join.ca,
                hostname=placement.name,
            )

        rendered: pulumi.Output[str] = pulumi.Output.all(join.nats_url, join.token).apply(render)
        user_data: pulumi.Output[str] = pulumi.Output.secret(rendered)
        return aws.ec2.Instance(
            f"{self._name}-{placement.name}",
            ami=args.ami_id,
            instance_type=args.instance_type,
            subnet_id=placement.subnet_id,
            vpc_security_group_ids=[security_group.id],
            iam_instance_profile=profile.name,
            associate_public_ip_address=False,
            # Two hops: Logstash runs in a container and takes S3 credentials from the role.
            metadata_options=imds_v2_only(hop_limit=2),
            root_block_device=encrypted_gp3_root(args.root_volume_gb),
            user_data=user_data,
            # cloud-init runs once per instance: a changed config only applies to a new one.
            user_data_replace_on_change=True,
            tags={"Name": placement.name, "bacalhau-logs-region": args.region},
            opts=self._child,
        )


def _pick(image: str) -> Callable[[Mapping[str, str]], str]:
    return lambda pulled: pulled[image]


def read_parameter_policy(parameter_arn: str) -> dict[str, Any]:
    """Reading exactly one SSM parameter (String: no KMS key involved)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": parameter_arn}],
    }
