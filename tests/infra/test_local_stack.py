"""What the local (Docker) backend declares, and the invariants it must keep."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
import yaml
from stack_harness import REPO, StackRun, run_program, stack_config

from infra.versions import LOGSTASH_BASE_IMAGE
from tests.support.pulumi_mocks import is_secret, unwrap

CONTAINER = "docker:index/container:Container"
BUCKET = "aws:s3/bucket:Bucket"
REGIONS_3 = [
    {"name": "us-east-1", "nodes": 2},
    {"name": "eu-west-1", "nodes": 1},
    {"name": "ap-south-1", "nodes": 3},
]


def local_config(regions: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"bacalhau-logs:backend": "docker", "bacalhau-logs:regions": regions, **extra}


@pytest.fixture(scope="module")
def dev() -> StackRun:
    return run_program(stack_config(REPO / "Pulumi.dev.yaml"), stack="dev")


@pytest.fixture(scope="module", params=[1, 3], ids=["1-region", "3-region"])
def variant(request: pytest.FixtureRequest) -> tuple[list[dict[str, Any]], StackRun]:
    regions = REGIONS_3[: request.param]
    return regions, run_program(local_config(regions), stack="test")


def compute_nodes(run: StackRun) -> list[Any]:
    return [c for c in run.of_type(CONTAINER) if c.inputs["name"].rsplit("-", 2)[-2] == "node"]


def labels(container: Any) -> dict[str, str]:
    return {item["label"]: item["value"] for item in container.inputs.get("labels", [])}


def test_dev_inventory(dev: StackRun) -> None:
    kinds = Counter(resource.type for resource in dev.resources)
    assert kinds["bacalhau-logs:local:Orchestrator"] == 1
    assert kinds["bacalhau-logs:local:Storage"] == 1
    assert kinds["bacalhau-logs:local:Search"] == 1
    assert kinds["bacalhau-logs:local:Registry"] == 1
    assert kinds["bacalhau-logs:local:Region"] == 2
    assert kinds[BUCKET] == 2
    assert kinds["docker:index/network:Network"] == 1
    # orchestrator, minio, opensearch, dashboards, registry + 3 compute nodes
    assert kinds[CONTAINER] == 8
    assert len(compute_nodes(dev)) == 3
    assert kinds["docker:index/image:Image"] == 2


def test_dev_outputs(dev: StackRun) -> None:
    outputs = dev.outputs
    assert outputs["orchestratorApiUrl"] == "http://127.0.0.1:1234"
    assert outputs["orchestratorNatsUrl"] == "nats://127.0.0.1:4222"
    assert outputs["s3Endpoint"] == "http://127.0.0.1:9000"
    assert outputs["opensearchUrl"] == "http://127.0.0.1:9200"
    assert outputs["dashboardsUrl"] == "http://127.0.0.1:5601"
    assert outputs["minioConsoleUrl"] == "http://127.0.0.1:9001"
    assert len(outputs["minioSecretKey"]) == 40
    assert outputs["buckets"] == {
        "us-east-1": "bacalhau-logs-dev-us-east-1-archive",
        "eu-west-1": "bacalhau-logs-dev-eu-west-1-archive",
    }
    for reference in outputs["images"].values():
        assert re.match(r"^registry:5000/bacalhau-logs/\w+@sha256:[0-9a-f]{64}$", reference)


def test_per_region_layout(variant: tuple[list[dict[str, Any]], StackRun]) -> None:
    regions, run = variant
    nodes = compute_nodes(run)
    per_region = Counter(labels(node)["region"] for node in nodes)
    assert per_region == {region["name"]: region["nodes"] for region in regions}
    buckets = {bucket.inputs["bucket"] for bucket in run.of_type(BUCKET)}
    assert buckets == {f"bacalhau-logs-test-{region['name']}-archive" for region in regions}
    assert set(run.outputs["nodes"]) == {region["name"] for region in regions}


def test_compute_nodes_join_with_the_token_and_labels(variant: tuple[Any, StackRun]) -> None:
    _, run = variant
    for node in compute_nodes(run):
        assert node.inputs["privileged"] is True
        assert "ports" not in node.inputs, "compute nodes publish no ports"
        node_labels = labels(node)
        assert node_labels["env"] == "test"
        uploads = unwrap(node.inputs["uploads"])
        config = yaml.safe_load(
            next(u for u in uploads if u["file"].endswith("config.yaml"))["content"]
        )
        assert config["Labels"] == {
            "region": node_labels["region"],
            "env": "test",
            "host": node.inputs["hostname"],
        }
        assert config["Compute"]["Orchestrators"] == ["nats://bacalhau-logs-test-orchestrator:4222"]
        assert len(config["Compute"]["Auth"]["Token"]) == 40
        assert config["Compute"]["AllowListedLocalPaths"] == [
            "/var/log/bacalhau-logs:rw",
            "/var/lib/bacalhau-logs/logstash:rw",
        ]


def test_orchestrator_and_nodes_share_one_generated_token(dev: StackRun) -> None:
    orchestrator = dev.named("orchestrator-container")
    config = yaml.safe_load(unwrap(orchestrator.inputs["uploads"])[0]["content"])
    node_config = yaml.safe_load(unwrap(compute_nodes(dev)[0].inputs["uploads"])[0]["content"])
    assert config["Orchestrator"]["Auth"]["Token"] == node_config["Compute"]["Auth"]["Token"]
    assert dev.named("orchestrator-token").inputs["special"] is False


def test_self_hosted_api_requires_the_generated_key(dev: StackRun) -> None:
    """Without API.Auth.Users a v1.9.3 node allows every request (pkg/node/node.go at v1.9.3
    falls back to authz.AlwaysAllow of pkg/authz/policy.go), so the stack configures one user
    whose key it generates; the jobs and infra.ops present it, and it is a secret output."""
    config = yaml.safe_load(
        unwrap(dev.named("orchestrator-container").inputs["uploads"])[0]["content"]
    )
    (user,) = config["API"]["Auth"]["Users"]
    key = dev.named("orchestrator-api-key")
    assert key.inputs["special"] is False and key.inputs["length"] >= 20
    assert len(user["APIKey"]) == key.inputs["length"]
    assert user["Capabilities"] == [{"Actions": ["read:job", "write:job", "read:node"]}]
    jobs = dev.of_type(JOB)
    assert jobs
    assert {unwrap(job.inputs["api_key"]) for job in jobs} == {user["APIKey"]}
    assert all(is_secret(job.inputs["api_key"]) for job in jobs)
    assert dev.outputs["orchestratorApiKey"] == user["APIKey"]


def test_orchestrator_job_store_survives_a_new_container(dev: StackRun) -> None:
    """The job store is BoltDB under DataDir (pkg/jobstore/boltdb at v1.9.3): on a volume, a
    replaced container keeps every job."""
    container = dev.named("orchestrator-container")
    config = yaml.safe_load(unwrap(container.inputs["uploads"])[0]["content"])
    (mount,) = container.inputs["volumes"]
    assert mount["containerPath"] == config["DataDir"]
    assert mount["volumeName"] == dev.named("orchestrator-data").inputs["name"]


def test_every_published_port_binds_loopback_only(variant: tuple[Any, StackRun]) -> None:
    _, run = variant
    published = [port for c in run.of_type(CONTAINER) for port in c.inputs.get("ports", [])]
    assert published, "the stack publishes its endpoints"
    assert {port["ip"] for port in published} == {"127.0.0.1"}


def test_every_image_is_pinned(dev: StackRun) -> None:
    pulled = [image.inputs["name"] for image in dev.of_type("docker:index/remoteImage:RemoteImage")]
    built = [image.inputs["imageName"] for image in dev.of_type("docker:index/image:Image")]
    for reference in pulled + built:
        name, _, tag = reference.rpartition(":")
        assert name and tag and "/" not in tag, f"{reference} has no tag"
        assert tag != "latest", f"{reference} is not pinned"
    assert "ghcr.io/bacalhau-project/bacalhau:v1.9.3-dind" in pulled
    assert "ghcr.io/bacalhau-project/bacalhau:v1.9.3" in pulled


def test_credentials_only_travel_as_secrets(dev: StackRun) -> None:
    for node in compute_nodes(dev):
        assert is_secret(node.inputs["envs"])
        assert is_secret(node.inputs["uploads"])
    assert is_secret(dev.named("storage-container").inputs["envs"])
    assert is_secret(dev.named("orchestrator-container").inputs["uploads"])
    provider = dev.named("storage-s3")
    assert is_secret(provider.inputs["accessKey"]) and is_secret(provider.inputs["secretKey"])


def test_archives_survive_destroy_by_default(dev: StackRun) -> None:
    for bucket in dev.of_type(BUCKET):
        assert dev.retained[bucket.name] is True
        assert bucket.inputs["forceDestroy"] is False
    assert dev.retained["storage-data"] is True


def test_archives_removed_only_when_the_stack_opts_in() -> None:
    run = run_program(
        local_config(REGIONS_3[:1], **{"bacalhau-logs:archive": {"destroyWithStack": True}})
    )
    (bucket,) = run.of_type(BUCKET)
    assert run.retained[bucket.name] is False
    assert bucket.inputs["forceDestroy"] is True


def test_children_are_parented_to_their_components(dev: StackRun) -> None:
    assert dev.parents["orchestrator-container"] == "orchestrator"
    assert dev.parents["storage-us-east-1"] == "storage"
    assert dev.parents["region-eu-west-1-node-1"] == "region-eu-west-1"
    assert dev.parents["search-dashboards"] == "search"


def test_nodes_trust_only_the_stack_registry(dev: StackRun) -> None:
    uploads = unwrap(compute_nodes(dev)[0].inputs["uploads"])
    daemon = next(u for u in uploads if u["file"] == "/etc/docker/daemon.json")
    assert yaml.safe_load(daemon["content"]) == {"insecure-registries": ["registry:5000"]}


def test_external_orchestrator_declares_no_local_orchestrator() -> None:
    config = local_config(
        REGIONS_3[:1],
        **{
            "bacalhau-logs:orchestrator": {
                "mode": "external",
                "natsUrl": "nats://orch.example:4222",
                "apiUrl": "https://orch.example:1234",
            },
            "bacalhau-logs:orchestratorToken": {"secure": "tok"},
            "bacalhau-logs:orchestratorApiKey": {"secure": "key"},
        },
    )
    run = run_program(config)
    assert not run.of_type("bacalhau-logs:local:Orchestrator")
    assert run.outputs["orchestratorApiUrl"] == "https://orch.example:1234"
    node_config = yaml.safe_load(unwrap(compute_nodes(run)[0].inputs["uploads"])[0]["content"])
    assert node_config["Compute"]["Orchestrators"] == ["nats://orch.example:4222"]


def test_stack_files_hold_no_credential_literals() -> None:
    for path in REPO.glob("Pulumi*.yaml"):
        config = yaml.safe_load(path.read_text()).get("config", {}) or {}
        for key, value in config.items():
            if re.search(r"(token|password|secret|apikey|api_key|accesskey)", key, re.I):
                assert isinstance(value, dict) and set(value) == {"secure"}, f"{path.name}:{key}"


JOB = "pulumi-python:dynamic/bacalhau:Job"


def test_dev_registers_each_regions_jobs(dev: StackRun) -> None:
    jobs = {job.name: job.inputs["spec"] for job in dev.of_type(JOB)}
    for region in ("us-east-1", "eu-west-1"):
        for kind in ("logstash", "compactor", "generate-logs"):
            spec = jobs[f"jobs-{region}-{kind}"]
            assert spec["Name"] == f"dev-{region}-{kind}"
            assert spec["Constraints"] == [{"Key": "region", "Operator": "=", "Values": [region]}]
        assert dev.named(f"jobs-{region}-logstash").inputs["endpoint"] == "http://127.0.0.1:1234"
    assert {kinds for kinds in dev.outputs["jobs"]} == {"us-east-1", "eu-west-1"}
    assert all(
        job_id.startswith("j-") for ids in dev.outputs["jobs"].values() for job_id in ids.values()
    )


def test_jobs_reach_storage_and_search_on_the_stack_network(dev: StackRun) -> None:
    spec = dev.named("jobs-eu-west-1-logstash").inputs["spec"]
    (task,) = spec["Tasks"]
    env = task["Env"]
    assert env["S3_ENDPOINT"] == "http://bacalhau-logs-dev-minio:9000"
    assert env["S3_BUCKET"] == "bacalhau-logs-dev-eu-west-1-archive"
    assert env["OPENSEARCH_URL"] == "http://bacalhau-logs-dev-opensearch:9200"
    assert task["Engine"]["Params"]["Image"] == dev.outputs["images"]["logstash"]
    # Credentials are references the node resolves; only the ones dev nodes define remain.
    references = {value for value in env.values() if value.startswith("env:")}
    assert references == {"env:LOGS_S3_ACCESS_KEY_ID", "env:LOGS_S3_SECRET_ACCESS_KEY"}


def test_other_regions_wait_for_the_canary(dev: StackRun) -> None:
    for kind in ("logstash", "compactor"):
        assert "jobs-us-east-1" in dev.depends_on[f"jobs-eu-west-1-{kind}"]
        assert "jobs-eu-west-1" not in dev.depends_on[f"jobs-us-east-1-{kind}"]
    # Every job waits for the compute nodes, so nothing is submitted to an empty network.
    assert dev.depends_on["jobs-us-east-1-logstash"] == ["region-us-east-1"]


def test_generator_job_only_when_enabled() -> None:
    run = run_program(local_config(REGIONS_3[:1]))
    names = {job.name for job in run.of_type(JOB)}
    assert names == {"jobs-us-east-1-logstash", "jobs-us-east-1-compactor"}


def test_dashboards_and_templates_installed_by_the_stack(dev: StackRun) -> None:
    (bootstrap,) = [
        r for r in dev.of_type("pulumi-python:dynamic:Resource") if r.name == "search-bootstrap"
    ]
    assert bootstrap.inputs["opensearch_url"] == "http://127.0.0.1:9200"
    assert bootstrap.inputs["dashboards_url"] == "http://127.0.0.1:5601"
    assert bootstrap.inputs["templates"], "index templates from logstash/templates"
    assert '"type":"dashboard"' in bootstrap.inputs["dashboards_ndjson"].replace(" ", "")


def test_nodes_hold_minio_credentials_for_jobs_and_bacalhau_s3(dev: StackRun) -> None:
    minio = dict(
        entry.split("=", 1) for entry in unwrap(dev.named("storage-container").inputs["envs"])
    )
    for node in compute_nodes(dev):
        env = dict(entry.split("=", 1) for entry in unwrap(node.inputs["envs"]))
        assert env["LOGS_S3_ACCESS_KEY_ID"] == env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]


def test_nodes_hand_job_directories_to_the_job_users_before_serving(dev: StackRun) -> None:
    for node in compute_nodes(dev):
        shell, flag, script = node.inputs["entrypoints"]
        assert (shell, flag) == ("/bin/sh", "-c")
        assert "install -d -m 0755 -o 10001 -g 10001 /var/log/bacalhau-logs" in script
        assert "-o 1000 -g 1000 /var/lib/bacalhau-logs/logstash" in script
        assert script.endswith(
            "exec /usr/local/bin/entrypoint.sh bacalhau serve --config /etc/bacalhau/config.yaml"
        )


def test_images_build_from_their_own_directories(dev: StackRun) -> None:
    builds = {
        image.name: image.inputs["build"] for image in dev.of_type("docker:index/image:Image")
    }
    assert builds["registry-agent"]["context"] == str(REPO / "agent")
    assert builds["registry-logstash"]["context"] == str(REPO / "logstash")


def image_builds(run: StackRun) -> dict[str, dict[str, Any]]:
    return {image.name: image.inputs["build"] for image in run.of_type("docker:index/image:Image")}


def test_without_a_base_digest_the_dockerfile_default_applies(dev: StackRun) -> None:
    assert [build.get("args") for build in image_builds(dev).values()] == [None, None]


def test_a_pinned_base_digest_reaches_only_the_logstash_build() -> None:
    digest = "sha256:" + "0123456789abcdef" * 4  # made up: the repository has no verified one
    run = run_program(
        local_config(REGIONS_3[:1], **{"bacalhau-logs:versions": {"logstashBaseDigest": digest}}),
        stack="test",
    )
    builds = image_builds(run)
    assert builds["registry-logstash"]["args"] == {
        "LOGSTASH_BASE": f"{LOGSTASH_BASE_IMAGE}@{digest}"
    }
    assert builds["registry-agent"].get("args") is None
