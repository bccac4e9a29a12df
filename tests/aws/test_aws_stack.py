"""Security invariants of the committed three-region AWS stack, checked in every region."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from aws_harness import ACCOUNT, DEPLOYER, AwsRun, prod_config, prod_settings, pulled, run_aws

from infra import aws_policies, cloudinit, nodeconfig
from infra.versions import LOGSTASH_BASE_IMAGE
from tests.support.pulumi_mocks import is_secret, unwrap

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
INTERNET = {"0.0.0.0/0", "::/0"}
NODE_IMAGE_PULL = "pulumi-python:dynamic/aws:NodeImagePull"


def test_three_regions_each_with_its_own_provider(prod_run: AwsRun) -> None:
    providers = {r.name for r in prod_run.of_type("pulumi:providers:aws")}
    assert providers == {f"aws-{region}" for region in REGIONS}
    for provider in prod_run.of_type("pulumi:providers:aws"):
        assert provider.inputs["region"] == provider.name.removeprefix("aws-")


@pytest.mark.parametrize("region", REGIONS)
def test_every_region_resource_uses_that_regions_provider(prod_run: AwsRun, region: str) -> None:
    resources = [r for r in prod_run.in_region(region) if r.type.startswith("aws:")]
    assert len(resources) > 30
    for resource in resources:
        assert f"::aws-{region}::" in resource.provider, (resource.name, resource.provider)


def test_home_region_services_use_the_home_provider(prod_run: AwsRun) -> None:
    home = [
        r
        for r in prod_run.resources
        if r.type.startswith("aws:") and r.name.startswith(("orchestrator", "search"))
    ]
    assert home
    assert all("::aws-us-east-1::" in r.provider for r in home)


def test_invokes_go_through_explicit_providers(prod_run: AwsRun) -> None:
    for token, _, provider in prod_run.calls:
        assert "pulumi:providers:aws::aws-" in provider, token


@pytest.mark.parametrize("region", REGIONS)
def test_bucket_is_locked_down(prod_run: AwsRun, region: str) -> None:
    bucket = prod_run.named(f"{region}-archive-bucket")
    assert bucket.inputs["bucket"] == f"bacalhau-logs-prod-{region}-archive-{ACCOUNT}"
    assert bucket.inputs["forceDestroy"] is False
    assert bucket.inputs["objectLockEnabled"] is True
    block = prod_run.named(f"{region}-archive-public-access-block").inputs
    for key in (
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
    ):
        assert block[key] is True
    ownership = prod_run.named(f"{region}-archive-ownership").inputs
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    versioning = prod_run.named(f"{region}-archive-versioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    encryption = prod_run.named(f"{region}-archive-encryption").inputs["rules"][0]
    assert encryption["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert prod_run.named(f"{region}-archive-key").inputs["enableKeyRotation"] is True
    policy = json.loads(prod_run.named(f"{region}-archive-policy").inputs["policy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert f"arn:aws:s3:::{bucket.inputs['bucket']}/*" in deny["Resource"]


@pytest.mark.parametrize("region", REGIONS)
def test_lifecycle_follows_archive_settings(prod_run: AwsRun, region: str) -> None:
    rule, results = prod_run.named(f"{region}-archive-lifecycle").inputs["rules"]
    assert rule["filter"]["prefix"] == "logs/"
    # Query answers published by infra.ops sit beside the archive and expire after a week.
    assert results["filter"]["prefix"] == "ops-results/"
    assert results["expiration"]["days"] == 7
    assert [(t["days"], t["storageClass"]) for t in rule["transitions"]] == [
        (30, "STANDARD_IA"),
        (90, "GLACIER_IR"),
    ]
    assert rule["expiration"]["days"] == 400
    lock = prod_run.named(f"{region}-archive-object-lock").inputs["rule"]["defaultRetention"]
    assert lock == {"mode": "COMPLIANCE", "days": 30}


@pytest.mark.parametrize("region", REGIONS)
def test_archive_survives_destroy(prod_run: AwsRun, region: str) -> None:
    archive = [r.name for r in prod_run.in_region(region) if "-archive-" in r.name]
    assert len(archive) == 9
    assert all(prod_run.retained[name] for name in archive)


def test_archive_is_disposable_only_on_opt_in() -> None:
    from aws_harness import run_aws

    raw_archive = {"destroyWithStack": True}
    aws = {**prod_config()["aws"], "archiveEncryption": "sse-s3"}
    run = run_aws(prod_settings(archive=raw_archive, aws=aws))
    bucket = run.named("us-east-1-archive-bucket")
    assert bucket.inputs["forceDestroy"] is True
    assert not run.retained["us-east-1-archive-bucket"]
    assert "objectLockEnabled" not in bucket.inputs or not bucket.inputs["objectLockEnabled"]
    rule = run.named("us-east-1-archive-encryption").inputs["rules"][0]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    assert not run.of_type("aws:kms/key:Key")


@pytest.mark.parametrize("region", REGIONS)
def test_node_policy_names_only_its_own_bucket(prod_run: AwsRun, region: str) -> None:
    policy = json.loads(prod_run.named(f"{region}-nodes-policy").inputs["policy"])
    text = json.dumps(policy)
    assert f"bacalhau-logs-prod-{region}-archive" in text
    for other in set(REGIONS) - {region}:
        assert f"-{other}-archive" not in text
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    bucket_arn = f"arn:aws:s3:::bacalhau-logs-prod-{region}-archive-{ACCOUNT}"
    assert by_sid["ReadWriteArchivePrefix"]["Resource"] == f"{bucket_arn}/logs/*"
    assert "s3:DeleteObject" not in by_sid["ReadWriteArchivePrefix"]["Action"]
    assert by_sid["ListArchivePrefix"]["Condition"]["StringLike"]["s3:prefix"] == ["logs/*"]
    for statement in policy["Statement"]:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert not any(a.endswith(":*") or a == "*" for a in actions)
        if statement["Resource"] == "*":
            assert actions == ["ecr:GetAuthorizationToken"]
    ssm = prod_run.named(f"{region}-nodes-ssm").inputs["policyArn"]
    assert ssm == aws_policies.SSM_MANAGED_POLICY
    role = prod_run.named(f"{region}-nodes-role").inputs
    assert role["tags"] == {aws_policies.SEARCH_WRITER_TAG: "prod"}


def test_no_aws_keys_on_nodes(prod_run: AwsRun) -> None:
    assert not prod_run.of_type("aws:iam/accessKey:AccessKey")
    for instance in prod_run.of_type("aws:ec2/instance:Instance"):
        user_data = instance.inputs["userData"]["value"]
        assert "AWS_ACCESS_KEY_ID" not in user_data
        assert "aws_secret_access_key" not in user_data.lower()


def test_no_ingress_from_the_internet(prod_run: AwsRun) -> None:
    for group in prod_run.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert not group.inputs.get("ingress"), group.name
    rules = prod_run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert {r.name for r in rules} == {
        *(f"orchestrator-nats-from-{region}" for region in REGIONS),
        "orchestrator-api-1",
    }
    for rule in rules:
        assert rule.inputs["cidrIpv4"] not in INTERNET
        assert rule.inputs["cidrIpv4"].endswith("/32")
        port = 1234 if rule.name == "orchestrator-api-1" else 4222
        assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (port, port)
    # The API is open to the deployer's address only (Pulumi.prod.yaml's apiAllowedCidrs).
    assert prod_run.named("orchestrator-api-1").inputs["cidrIpv4"] == "203.0.113.7/32"
    assert not prod_run.of_type("aws:ec2/securityGroupRule:SecurityGroupRule")


def test_instances_require_imdsv2_and_encrypted_gp3(prod_run: AwsRun) -> None:
    instances = prod_run.of_type("aws:ec2/instance:Instance")
    assert len(instances) == 2 + 2 + 1 + 1
    for instance in instances:
        assert instance.inputs["metadataOptions"]["httpTokens"] == "required"
        root = instance.inputs["rootBlockDevice"]
        assert root["encrypted"] is True
        assert root["volumeType"] == "gp3"
        assert instance.inputs["ami"] == "ami-0123456789abcdef0"
        assert is_secret(instance.inputs["userData"]), instance.name


@pytest.mark.parametrize(
    ("region", "count"), [("us-east-1", 2), ("eu-west-1", 2), ("ap-southeast-2", 1)]
)
def test_node_count_type_and_placement(prod_run: AwsRun, region: str, count: int) -> None:
    nodes = [
        r for r in prod_run.of_type("aws:ec2/instance:Instance") if r.name.startswith(f"{region}-")
    ]
    assert len(nodes) == count
    private = {r.name for r in prod_run.in_region(region) if "-network-private-" in r.name}
    for node in nodes:
        assert node.inputs["instanceType"] == "m6i.xlarge"
        assert node.inputs["associatePublicIpAddress"] is False
        assert node.inputs["subnetId"].removesuffix("-id") in private


@pytest.mark.parametrize("region", REGIONS)
def test_node_user_data_joins_with_tls_and_labels(prod_run: AwsRun, region: str) -> None:
    import yaml

    node = prod_run.named(f"{region}-nodes-bacalhau-logs-prod-{region}-node-1")
    document = yaml.safe_load(node.inputs["userData"]["value"])
    files = {f["path"]: f for f in document["write_files"]}
    config = yaml.safe_load(files[cloudinit.CONFIG_PATH]["content"])
    assert files[cloudinit.CONFIG_PATH]["permissions"] == "0600"
    compute = config["Compute"]
    assert compute["Orchestrators"] == [prod_run.outputs["orchestratorNatsUrl"]]
    # TLS verified against the published CA; never RequireTLS (see tests/infra/test_nodeconfig.py)
    assert compute["TLS"] == {"CACert": cloudinit.ORCHESTRATOR_CA_PATH}
    assert len(compute["Auth"]["Token"]) == 48
    assert config["Labels"] == {
        "region": region,
        "availability-zone": f"{region}a",
        "env": "prod",
        "instance-type": "m6i.xlarge",
        "host": f"bacalhau-logs-prod-{region}-node-1",
    }
    assert compute["AllowListedLocalPaths"] == [
        f"{path}:rw" for path in nodeconfig.ALLOW_LISTED_PATHS
    ]
    assert (
        f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com" in files["/root/.docker/config.json"]["content"]
    )


def test_opensearch_domain_is_secure(prod_run: AwsRun) -> None:
    (domain,) = prod_run.of_type("aws:opensearch/domain:Domain")
    inputs = domain.inputs
    assert inputs["encryptAtRest"]["enabled"] is True
    assert inputs["nodeToNodeEncryption"]["enabled"] is True
    endpoint = inputs["domainEndpointOptions"]
    assert endpoint["enforceHttps"] is True
    assert endpoint["tlsSecurityPolicy"].startswith("Policy-Min-TLS-1-2")
    # IAM-only FGAC: the deploying role is the master user, and no password exists at all.
    security = inputs["advancedSecurityOptions"]
    assert not is_secret(security)
    assert security["enabled"] is True
    assert security["internalUserDatabaseEnabled"] is False
    assert security["masterUserOptions"] == {"masterUserArn": DEPLOYER}
    assert not [r for r in prod_run.resources if "master-password" in r.name]
    cluster = inputs["clusterConfig"]
    assert cluster["instanceCount"] == 2
    assert cluster["zoneAwarenessEnabled"] is True
    assert cluster["zoneAwarenessConfig"]["availabilityZoneCount"] == 2
    policy = json.loads(inputs["accessPolicies"])
    assert "*" not in aws_policies.principals(policy)
    assert DEPLOYER in aws_policies.principals(policy)
    nodes = policy["Statement"][0]
    assert nodes["Condition"] == {
        "StringEquals": {f"aws:PrincipalTag/{aws_policies.SEARCH_WRITER_TAG}": "prod"}
    }


def test_registry_per_region(prod_run: AwsRun) -> None:
    repositories = prod_run.of_type("aws:ecr/repository:Repository")
    assert len(repositories) == 2 * len(REGIONS)
    for repository in repositories:
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repository.inputs["imageScanningConfiguration"]["scanOnPush"] is True
        assert repository.inputs["encryptionConfigurations"][0]["encryptionType"] == "KMS"
    assert set(prod_run.outputs["ecrRepositories"]) == set(REGIONS)
    assert set(prod_run.outputs["ecrRepositories"]["eu-west-1"]) == {"agent", "logstash"}


def test_orchestrator_is_self_hosted_with_generated_token(prod_run: AwsRun) -> None:
    instance = prod_run.named("orchestrator-instance")
    document = instance.inputs["userData"]["value"]
    assert "subjectAltName=IP:" in document
    parameter = prod_run.named("orchestrator-ca").inputs
    assert unwrap(parameter["value"]) == cloudinit.CA_PENDING
    assert prod_run.outputs["orchestratorApiUrl"].startswith("https://")
    # infra.ops verifies the self-hosted API against the certificate in this parameter, and
    # authenticates with the generated key, which stays a secret output.
    assert prod_run.outputs["orchestratorCa"] == {
        "parameter": "/bacalhau-logs-prod/orchestrator-ca",
        "region": "us-east-1",
    }
    assert "orchestratorApiKey" in prod_run.secret_outputs
    assert prod_run.outputs["orchestratorNatsUrl"].startswith("nats://")


def test_outputs(prod_run: AwsRun) -> None:
    outputs = prod_run.outputs
    assert set(outputs["buckets"]) == set(REGIONS)
    assert outputs["s3Endpoints"]["eu-west-1"] == "https://s3.eu-west-1.amazonaws.com"
    assert set(outputs["opensearchUrls"]) == set(REGIONS)
    assert outputs["opensearchUrls"]["eu-west-1"].startswith("https://")
    assert set(outputs["dashboardsUrls"]) == set(REGIONS)
    assert outputs["opensearchRetentionDays"] == 30
    assert outputs["opensearchMasterUserArn"] == DEPLOYER
    assert set(outputs["images"]) == set(REGIONS)
    assert set(outputs["jobs"]) == set(REGIONS)
    assert set(outputs["jobs"]["eu-west-1"]) == {"logstash", "compactor"}


def test_components_parent_their_children(prod_run: AwsRun) -> None:
    for resource in prod_run.resources:
        if resource.type.startswith("aws:") or resource.type.startswith("random:"):
            assert prod_run.parents[resource.name] is not None, resource.name


def test_the_stack_passes_the_policy_pack(prod_run: AwsRun) -> None:
    from policy import rules

    found: list[str] = []
    for resource in prod_run.resources:

        class Args:
            resource_type = resource.type
            props = unwrap(resource.inputs)

        for name, (_, validate) in rules.RULES.items():
            validate(
                Args(),
                lambda message, urn=None, n=name, r=resource: found.append(
                    f"{n} {r.name}: {message}"
                ),
            )
    assert found == []


def test_nodes_are_named_by_the_stack(prod_run: AwsRun) -> None:
    import yaml

    node = prod_run.named("eu-west-1-nodes-bacalhau-logs-prod-eu-west-1-node-2")
    document = yaml.safe_load(node.inputs["userData"]["value"])
    assert document["hostname"] == "bacalhau-logs-prod-eu-west-1-node-2"


@pytest.mark.parametrize("region", REGIONS)
def test_each_region_lists_its_images_for_its_nodes(prod_run: AwsRun, region: str) -> None:
    """Bacalhau's Docker daemon has no ECR credentials (getAuthToken in pkg/docker/docker.go
    authenticates only the default registry), so nodes pull the listed images themselves."""
    parameter = prod_run.named(f"{region}-nodes-images")
    assert parameter.type == "aws:ssm/parameter:Parameter"
    assert parameter.provider.split("::")[-2] == f"aws-{region}"
    assert parameter.inputs["name"] == f"/bacalhau-logs-prod/{region}/images"
    pushed = sorted(
        f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/bacalhau-logs-prod/{image}@sha256:"
        + hashlib.sha256(f"{region}-images-{image}".encode()).hexdigest()
        for image in ("agent", "logstash")
    )
    # pulumi-aws always treats a parameter value as secret; this one is not.
    assert unwrap(parameter.inputs["value"]) == "\n".join(pushed)
    policy = json.loads(prod_run.named(f"{region}-nodes-images-policy").inputs["policy"])
    assert policy["Statement"] == [
        {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": parameter_arn(region)}
    ]
    node = prod_run.named(f"{region}-nodes-bacalhau-logs-prod-{region}-node-1")
    script = {f["path"]: f["content"] for f in yaml_files(node)}[cloudinit.PULL_IMAGES_SCRIPT]
    assert f"--region {region} --name /bacalhau-logs-prod/{region}/images" in script


@pytest.mark.parametrize("region", REGIONS)
def test_jobs_use_images_only_once_every_node_has_them(prod_run: AwsRun, region: str) -> None:
    """A node bids on a Docker job only if it can inspect the image, locally or in the registry
    without credentials (ImagePlatformBidStrategy, pkg/docker/docker.go ImageDistribution at
    v1.9.3); a job naming a digest its nodes lack would fail. The jobs take their image
    references from the pull that ran on every node of the region."""
    (pull,) = [
        r for r in prod_run.of_type(NODE_IMAGE_PULL) if r.name == f"{region}-nodes-image-pull"
    ]
    instances = [
        f"{r.name}-id"
        for r in prod_run.of_type("aws:ec2/instance:Instance")
        if r.name.startswith(f"{region}-")
    ]
    assert sorted(pull.inputs["instance_ids"]) == sorted(instances)
    assert pull.inputs["command"] == cloudinit.PULL_IMAGES_SCRIPT
    assert pull.inputs["region"] == region
    assert set(prod_run.depends_on[pull.name]) == {
        f"{region}-nodes-images",
        f"{region}-nodes-images-policy",
    }
    references = pull.inputs["references"]
    for job, image in (("logstash", "logstash"), ("compactor", "agent")):
        spec = prod_run.named(f"jobs-{region}-{job}").inputs["spec"]
        assert spec["Tasks"][0]["Engine"]["Params"]["Image"] == pulled(references[image])


def parameter_arn(region: str) -> str:
    return f"arn:aws:mock:::{region}-nodes-images"


def yaml_files(node: Any) -> list[dict[str, Any]]:
    import yaml

    files: list[dict[str, Any]] = yaml.safe_load(node.inputs["userData"]["value"])["write_files"]
    return files


def test_a_pinned_logstash_base_rebuilds_logstash_under_a_new_tag(prod_run: AwsRun) -> None:
    """The ECR tags are immutable (aws_registry.py), so the pin must reach the build and the tag;
    the agent image, which has no such arg, keeps both."""
    digest = "sha256:" + "0123456789abcdef" * 4  # made up: the repository has no verified one
    pinned = run_aws(prod_settings(versions={"logstashBaseDigest": digest}))
    for region in REGIONS:
        logstash, agent = (f"{region}-images-{image}" for image in ("logstash", "agent"))
        assert prod_run.named(logstash).inputs["build"].get("args") is None
        assert pinned.named(logstash).inputs["build"]["args"] == {
            "LOGSTASH_BASE": f"{LOGSTASH_BASE_IMAGE}@{digest}"
        }
        assert (
            pinned.named(logstash).inputs["imageName"]
            != prod_run.named(logstash).inputs["imageName"]
        )
        assert pinned.named(agent).inputs["build"].get("args") is None
        assert pinned.named(agent).inputs["imageName"] == prod_run.named(agent).inputs["imageName"]
