"""A small VPC per region: private subnets for compute nodes, one public subnet for the NAT."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# Two AZs are enough for spreading nodes; one NAT gateway keeps the cost of a region low (its AZ
# is a single point of failure for egress only, nodes keep running and catch up afterwards).
AZ_COUNT = 2


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """``count`` equal subnets carved from ``vpc_cidr``, four bits smaller (a /16 gives /20s)."""
    network = ipaddress.ip_network(vpc_cidr)
    subnets = list(network.subnets(prefixlen_diff=4))
    if count > len(subnets):
        raise ValueError(f"{vpc_cidr} is too small for {count} subnets")
    return [str(subnet) for subnet in subnets[:count]]


@dataclass(frozen=True)
class RegionNetworkArgs:
    vpc_cidr: str
    availability_zones: tuple[str, ...]


class RegionNetwork(pulumi.ComponentResource):
    """Creates a VPC, an internet gateway, one public subnet with a NAT gateway (and its Elastic
    IP), one private subnet per availability zone and their route tables.

    Compute nodes live in the private subnets: nothing on the internet can open a connection to
    them, and all their egress leaves through ``nat_public_ip``.
    """

    def __init__(
        self, name: str, args: RegionNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:aws:RegionNetwork", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        cidrs = subnet_cidrs(args.vpc_cidr, len(args.availability_zones) + 1)

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": name},
            opts=self._child,
        )
        self.public_subnet_id = self._create_public_subnet(cidrs[0], args.availability_zones[0])
        self.private_subnet_ids = self._create_private_subnets(cidrs[1:], args.availability_zones)
        self.availability_zones = args.availability_zones
        self.register_outputs(
            {
                "vpcId": self.vpc.id,
                "publicSubnetId": self.public_subnet_id,
                "privateSubnetIds": self.private_subnet_ids,
                "natPublicIp": self.nat_public_ip,
            }
        )

    def _create_public_subnet(self, cidr: str, zone: str) -> pulumi.Output[str]:
        name = self._name
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, opts=self._child)
        subnet = aws.ec2.Subnet(
            f"{name}-public",
            vpc_id=self.vpc.id,
            cidr_block=cidr,
            availability_zone=zone,
            # Only the NAT gateway and an orchestrator with an Elastic IP live here.
            map_public_ip_on_launch=False,
            tags={"Name": f"{name}-public"},
            opts=self._child,
        )
        table = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
            opts=self._child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-public-rta", subnet_id=subnet.id, route_table_id=table.id, opts=self._child
        )
        nat_ip = aws.ec2.Eip(f"{name}-nat-eip", domain="vpc", opts=self._child)
        self.nat_gateway = aws.ec2.NatGateway(
            f"{name}-nat",
            allocation_id=nat_ip.id,
            subnet_id=subnet.id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
        )
        self.nat_public_ip: pulumi.Output[str] = nat_ip.public_ip
        return subnet.id

    def _create_private_subnets(
        self, cidrs: list[str], zones: tuple[str, ...]
    ) -> list[pulumi.Output[str]]:
        name = self._name
        table = aws.ec2.RouteTable(
            f"{name}-private-rt",
            vpc_id=self.vpc.id,
            routes=[
                aws.ec2.RouteTableRouteArgs(
                    cidr_block="0.0.0.0/0", nat_gateway_id=self.nat_gateway.id
                )
            ],
            opts=self._child,
        )
        subnet_ids = []
        for index, (cidr, zone) in enumerate(zip(cidrs, zones, strict=True), start=1):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-private-{index}"},
                opts=self._child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-rta-{index}",
                subnet_id=subnet.id,
                route_table_id=table.id,
                opts=self._child,
            )
            subnet_ids.append(subnet.id)
        return subnet_ids
