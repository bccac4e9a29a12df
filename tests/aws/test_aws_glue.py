"""Images, jobs, search bootstrap and writers of the AWS stack under mocks: per region, the right
place."""

from __future__ import annotations

import pytest
from aws_harness import ACCOUNT, DEPLOYER, AwsRun, ecr_password, prod_config, prod_settings, run_aws

from infra.settings import ConfigError
from tests.support.pulumi_mocks import is_secret, unwrap

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
JOB = "pulumi-python:dynamic/bacalhau:Job"
BOOTSTRAP = "pulumi-python:dynamic:Resource"
WRITER = "pulumi-python:dynamic/opensearch:SearchWriter"


def _registry(region: str) -> str:
    return f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com"


@pytest.mark.parametrize("region", REGIONS)
def test_images_are_pushed_to_the_regions_ecr_with_its_token(prod_run: AwsRun, region: str) -> None:
    for image in ("agent", "logstash"):
        declared = prod_run.named(f"{region}-images-{image}")
        repository, tag = declared.inputs["imageName"].rsplit(":", 1)
        assert repository == f"{_registry(region)}/bacalhau-logs-prod/{image}"
        assert tag.startswith("prod-") and len(tag) == len("prod-") + 16
        # The token is secret, so Pulumi encrypts the whole registry block around it.
        assert is_secret(declared.inputs["registry"])
        registry = unwrap(declared.inputs["registry"])
        assert registry["server"] == f"https://{_registry(region)}"
        assert registry["username"] == "AWS"
        # Only the region's own token opens its registry.
        assert registry["password"] == ecr_password(region)
        assert declared.inputs["build"]["platform"] == "linux/amd64"
    tokens = [c for c in prod_run.calls if c[0].startswith("aws:ecr/getAuthorizationToken")]
    assert any(f"::aws-{region}::" in provider for _, _, provider in tokens)


def test_agent_builds_from_its_own_directory(prod_run: AwsRun) -> None:
    build = prod_run.named("us-east-1-images-agent").inputs["build"]
    assert build["context"].endswith("/agent")
    assert build["dockerfile"].endswith("/agent/Dockerfile")


@pytest.mark.parametrize("region", REGIONS)
def test_job_specs_run_the_regions_images_against_its_bucket_and_search(
    prod_run: AwsRun, region: str
) -> None:
    logstash = prod_run.named(f"jobs-{region}-logstash").inputs
    spec = logstash["spec"]
    assert spec["Constraints"] == [{"Key": "region", "Operator": "=", "Values": [region]}]
    (task,) = spec["Tasks"]
    image = task["Engine"]["Params"]["Image"]
    assert image.startswith(f"{_registry(region)}/bacalhau-logs-prod/logstash@sha256:")
    env = task["Env"]
    assert env["S3_BUCKET"] == f"bacalhau-logs-prod-{region}-archive-{ACCOUNT}"
    assert env["S3_ENDPOINT"] == f"https://s3.{region}.amazonaws.com"
    assert env["S3_REGION"] == region
    assert env["OPENSEARCH_URL"] == "https://search-bl-prod.es.amazonaws.com"
    assert env["OPENSEARCH_AUTH"] == "aws_iam"
    # placement: home puts the one domain in us-east-1; every region signs for that region.
    assert env["OPENSEARCH_REGION"] == "us-east-1"
    compactor = prod_run.named(f"jobs-{region}-compactor").inputs["spec"]
    (compact,) = compactor["Tasks"]
    assert compact["Engine"]["Params"]["Image"].startswith(
        f"{_registry(region)}/bacalhau-logs-prod/agent@sha256:"
    )
    for job in (logstash["spec"], compactor):
        for task in job["Tasks"]:
            assert not [v for v in (task.get("Env") or {}).values() if str(v).startswith("env:")]


def test_jobs_reach_the_self_hosted_api_with_its_published_ca(prod_run: AwsRun) -> None:
    jobs = prod_run.of_type(JOB)
    assert len(jobs) == 2 * len(REGIONS)
    for job in jobs:
        assert job.inputs["endpoint"].startswith("https://198.51.100.")
        assert job.inputs["endpoint"].endswith(":1234")
        assert job.inputs["ca_source"] == {
            "parameter": "/bacalhau-logs-prod/orchestrator-ca",
            "region": "us-east-1",
        }


def test_canary_region_goes_first() -> None:
    run = run_aws(prod_settings(jobs={"canaryRegion": "eu-west-1"}))
    names = [r.name for r in run.of_type(JOB)]
    assert names.index("jobs-eu-west-1-logstash") < names.index("jobs-us-east-1-logstash")
    for region in ("us-east-1", "ap-southeast-2"):
        waits = run.depends_on[f"jobs-{region}-logstash"]
        assert "jobs-eu-west-1" in waits
        assert f"{region}-nodes" in waits and "orchestrator" in waits
    assert "jobs-us-east-1" not in run.depends_on["jobs-eu-west-1-logstash"]


def _node_role(region: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{region}-nodes-role"


def test_one_signed_bootstrap_for_the_home_domain_maps_no_roles(prod_run: AwsRun) -> None:
    (bootstrap,) = prod_run.of_type(BOOTSTRAP)
    inputs = bootstrap.inputs
    assert bootstrap.name == "search-bootstrap"
    assert inputs["aws_region"] == "us-east-1"
    assert inputs["opensearch_url"] == "https://search-bl-prod.es.amazonaws.com"
    assert inputs.get("username") is None and inputs.get("password") is None
    assert not [key for key in inputs if "role" in key]
    assert prod_run.outputs["opensearchMasterUserArn"] == DEPLOYER


def test_each_region_maps_its_own_node_role_in_the_home_domain(prod_run: AwsRun) -> None:
    writers = {w.name: w.inputs for w in prod_run.of_type(WRITER)}
    assert set(writers) == {f"{region}-search-writer" for region in REGIONS}
    for region in REGIONS:
        inputs = writers[f"{region}-search-writer"]
        assert inputs["region"] == region
        assert inputs["role_arn"] == _node_role(region)
        # placement: home puts the one domain in us-east-1; every writer signs for it.
        assert inputs["opensearch_url"] == "https://search-bl-prod.es.amazonaws.com"
        assert inputs["aws_region"] == "us-east-1"
        assert "search" in prod_run.depends_on[f"{region}-search-writer"]


def test_per_region_search_gets_a_bootstrap_per_domain_and_a_writer_in_it() -> None:
    aws = {**prod_config()["aws"], "opensearch": {"placement": "per-region"}}
    run = run_aws(prod_settings(aws=aws))
    for region in REGIONS:
        assert run.named(f"{region}-search-bootstrap").inputs["aws_region"] == region
        writer = run.named(f"{region}-search-writer").inputs
        assert writer["opensearch_url"] == f"https://search-bl-prod-{region}.es.amazonaws.com"
        assert (writer["region"], writer["aws_region"]) == (region, region)
        assert writer["role_arn"] == _node_role(region)
        env = run.named(f"jobs-{region}-logstash").inputs["spec"]["Tasks"][0]["Env"]
        assert env["OPENSEARCH_REGION"] == region


def test_self_hosted_without_an_allowed_cidr_is_a_config_error() -> None:
    aws = {key: value for key, value in prod_config()["aws"].items() if key != "apiAllowedCidrs"}
    with pytest.raises(ConfigError, match=r"bacalhau-logs:aws\.apiAllowedCidrs: .*registerJobs"):
        run_aws(prod_settings(aws=aws))


def test_register_jobs_false_declares_no_jobs_but_everything_else() -> None:
    aws = {key: value for key, value in prod_config()["aws"].items() if key != "apiAllowedCidrs"}
    run = run_aws(prod_settings(aws={**aws, "registerJobs": False}))
    assert not run.of_type(JOB)
    assert run.outputs["jobs"] == {}
    assert run.of_type("docker:index/image:Image")
    assert not run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")[3:]


def test_nodes_output_names_every_node_for_host_scoped_queries(prod_run: AwsRun) -> None:
    assert prod_run.outputs["nodes"] == {
        "us-east-1": ["bacalhau-logs-prod-us-east-1-node-1", "bacalhau-logs-prod-us-east-1-node-2"],
        "eu-west-1": ["bacalhau-logs-prod-eu-west-1-node-1", "bacalhau-logs-prod-eu-west-1-node-2"],
        "ap-southeast-2": ["bacalhau-logs-prod-ap-southeast-2-node-1"],
    }
