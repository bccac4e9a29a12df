"""Pieces every EC2-hosted component of the AWS backend declares the same way."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra import aws_policies


def egress_only_security_group(
    name: str, *, vpc_id: pulumi.Input[str], description: str, opts: pulumi.ResourceOptions
) -> aws.ec2.SecurityGroup:
    """A security group with no ingress at all; callers add narrow ingress rules separately."""
    return aws.ec2.SecurityGroup(
        name,
        vpc_id=vpc_id,
        description=description,
        egress=[
            aws.ec2.SecurityGroupEgressArgs(
                protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"]
            )
        ],
        opts=opts,
    )


def ssm_instance_profile(
    name: str, *, role: aws.iam.Role, opts: pulumi.ResourceOptions
) -> aws.iam.InstanceProfile:
    """The instance profile for ``role``, with SSM core attached: shell access without SSH."""
    aws.iam.RolePolicyAttachment(
        f"{name}-ssm", role=role.name, policy_arn=aws_policies.SSM_MANAGED_POLICY, opts=opts
    )
    return aws.iam.InstanceProfile(f"{name}-profile", role=role.name, opts=opts)


def imds_v2_only(hop_limit: int) -> aws.ec2.InstanceMetadataOptionsArgs:
    """Instance metadata with session tokens required (IMDSv2); ``hop_limit`` 2 lets containers
    on the instance reach it, 1 keeps it to the host."""
    return aws.ec2.InstanceMetadataOptionsArgs(
        http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=hop_limit
    )


def encrypted_gp3_root(size_gb: int) -> aws.ec2.InstanceRootBlockDeviceArgs:
    return aws.ec2.InstanceRootBlockDeviceArgs(
        volume_type="gp3", volume_size=size_gb, encrypted=True, delete_on_termination=True
    )
