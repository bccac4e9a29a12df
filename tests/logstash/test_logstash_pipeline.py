"""The pipeline's required settings, read from logstash/ with the test-only reader in lsconf."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from logstash_support import LOGSTASH_DIR
from lsconf import Plugin, parse

from infra.versions import LOGSTASH_BASE_IMAGE

DATA_DIR = "/usr/share/logstash/data"
ENV_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)(?::[^}]*)?\}")
CREDENTIAL_SETTINGS = {"access_key_id", "secret_access_key", "session_token", "user", "password"}
PIPELINE_ENV = {
    "S3_BUCKET",
    "S3_REGION",
    "S3_ENDPOINT",
    "S3_ARCHIVE_PREFIX",
    "REGION",
    "AGGREGATE_DURATION",
    "TOP_N_MIN_COUNT",
    "OPENSEARCH_URL",
    "OPENSEARCH_USER",
    "OPENSEARCH_PASSWORD",
    "OPENSEARCH_AUTH",
    "OPENSEARCH_REGION",
}


def pipeline_text(name: str) -> str:
    return (LOGSTASH_DIR / "pipeline" / f"{name}.conf").read_text()


@pytest.fixture(scope="module")
def plugins() -> dict[str, list[Plugin]]:
    return {
        path.stem: parse(path.read_text()) for path in (LOGSTASH_DIR / "pipeline").glob("*.conf")
    }


def only(plugins: list[Plugin], section: str, name: str) -> Plugin:
    found = [p for p in plugins if p.section == section and p.name == name]
    assert len(found) == 1, found
    return found[0]


def squeezed(conditions: tuple[str, ...]) -> list[str]:
    """Conditions without spaces: the reader joins an expression's tokens with blanks."""
    return [c.replace(" ", "") for c in conditions]


def settings_yml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((LOGSTASH_DIR / "config" / "logstash.yml").read_text())
    return loaded


def test_queue_is_persisted_and_dead_letter_queue_on_under_the_host_mount() -> None:
    settings = settings_yml()
    assert settings["queue.type"] == "persisted"
    assert settings["dead_letter_queue.enable"] is True
    assert settings["path.data"] == DATA_DIR


def test_durability_comment_matches_the_checkpoint_settings() -> None:
    """logstash.yml documents a crash window of queue.checkpoint.writes events at the default
    (1024, "Controlling durability", docs/static/persistent-queues.asciidoc at v8.19.20); a
    changed setting must change that text too."""
    text = (LOGSTASH_DIR / "config" / "logstash.yml").read_text()
    settings = settings_yml()
    assert "queue.checkpoint.writes" not in settings
    assert "queue.checkpoint.acks" not in settings
    assert "(default 1024)" in text
    assert "at least once" in text


def test_ingest_stamps_every_parsed_line_before_the_fork_in_file_order(
    plugins: dict[str, list[Plugin]],
) -> None:
    pipelines = {
        p["pipeline.id"]: p
        for p in yaml.safe_load((LOGSTASH_DIR / "config" / "pipelines.yml").read_text())
    }
    ingest = pipelines["bacalhau-ingest"]
    assert (ingest["pipeline.workers"], ingest["pipeline.ordered"]) == (1, True)
    identity = only(plugins["ingest"], "filter", "ruby")
    assert identity.settings["path"] == "/usr/share/logstash/ruby/event_identity.rb"
    assert squeezed(identity.conditions) == ['"_jsonparsefailure"notin[tags]']
    assert (LOGSTASH_DIR / "ruby" / "event_identity.rb").is_file()
    fork = only(plugins["ingest"], "output", "pipeline")
    assert "[@metadata][archive_line]" in squeezed(fork.conditions)
    rejected = [p for p in plugins["ingest"] if p.section == "output" and p.name == "file"]
    assert len(rejected) == 2
    assert all(p.settings["path"].startswith(DATA_DIR + "/rejected/") for p in rejected)


def test_pipelines_yml_names_every_pipeline_file_and_one_metrics_worker() -> None:
    pipelines = yaml.safe_load((LOGSTASH_DIR / "config" / "pipelines.yml").read_text())
    configs = {p["pipeline.id"]: p for p in pipelines}
    files = {Path(p["path.config"]).name for p in pipelines}
    assert files == {p.name for p in (LOGSTASH_DIR / "pipeline").glob("*.conf")}
    assert configs["bacalhau-metrics"]["pipeline.workers"] == 1
    # Per-pipeline overrides must not weaken durability.
    assert all("queue.type" not in p for p in pipelines)


def test_pipeline_addresses_connect(plugins: dict[str, list[Plugin]]) -> None:
    fork = only(plugins["ingest"], "output", "pipeline")
    inputs = [
        p.settings["address"]
        for c in plugins.values()
        for p in c
        if p.name == "pipeline" and p.section == "input"
    ]
    assert sorted(fork.settings["send_to"]) == sorted(inputs)


def test_file_input_tails_plain_generations_from_the_start(
    plugins: dict[str, list[Plugin]],
) -> None:
    file_input = only(plugins["ingest"], "input", "file").settings
    assert file_input["path"] == ["/app/logs/application.log*"]
    assert file_input["exclude"] == ["*.gz"]
    assert file_input["codec"] == "json"
    assert file_input["start_position"] == "beginning"
    assert file_input["sincedb_path"].startswith(DATA_DIR + "/")


def test_event_time_comes_from_time_local_in_utc(plugins: dict[str, list[Plugin]]) -> None:
    date = only(plugins["ingest"], "filter", "date").settings
    assert date["match"][0] == "time_local"
    assert date["timezone"] == "UTC"
    assert date["target"] == "@timestamp"


def test_archive_is_gzip_time_rotated_restored_in_the_hive_layout(
    plugins: dict[str, list[Plugin]],
) -> None:
    s3 = only(plugins["archive"], "output", "s3").settings
    assert s3["encoding"] == "gzip"
    assert s3["restore"] is True
    assert isinstance(s3["time_file"], int) and s3["time_file"] > 0
    assert s3["rotation_strategy"] in {"time", "size_and_time"}
    assert s3["temporary_directory"].startswith(DATA_DIR + "/")
    assert s3["prefix"] == (
        "${S3_ARCHIVE_PREFIX:logs/}region=${REGION}/dt=%{+YYYY-MM-dd}/hour=%{+HH}/"
    )
    assert s3["codec"] == {"line": {"format": "%{[@metadata][archive_line]}"}}
    assert s3["endpoint"] == "${S3_ENDPOINT}"
    assert s3["additional_settings"] == {"force_path_style": True}
    assert s3["bucket"] == "${S3_BUCKET}"


def test_no_plugin_carries_credential_literals(plugins: dict[str, list[Plugin]]) -> None:
    for pipeline in plugins.values():
        for plugin in pipeline:
            for key, value in plugin.settings.items():
                if key in CREDENTIAL_SETTINGS:
                    assert isinstance(value, str) and ENV_REFERENCE.fullmatch(value), (
                        plugin.name,
                        key,
                    )
    s3 = only(plugins["archive"], "output", "s3").settings
    assert not CREDENTIAL_SETTINGS & s3.keys(), "S3 credentials come from the AWS SDK chain"


def test_metrics_go_to_opensearch_with_credentials_only_from_the_environment(
    plugins: dict[str, list[Plugin]],
) -> None:
    outputs = [p for p in plugins["metrics"] if p.section == "output"]
    assert {p.name for p in outputs} == {"opensearch"}
    authenticated = [p for p in outputs if "user" in p.settings]
    assert len(authenticated) == 1
    auth = authenticated[0]
    assert "auth_type" not in auth.settings
    assert auth.settings["user"] == "${OPENSEARCH_USER:}"
    assert auth.settings["password"] == "${OPENSEARCH_PASSWORD:}"
    assert auth.settings["ssl_certificate_verification"] is True
    assert '[@metadata][opensearch_user]!=""' in squeezed(auth.conditions)
    for output in outputs:
        assert output.settings["hosts"] == ["${OPENSEARCH_URL}"]
        assert output.settings["index"] == "bacalhau-logs-metrics-%{+YYYY.MM.dd}"
        assert output.settings["manage_template"] is False
        assert output.settings["document_id"] == "%{[@metadata][document_id]}"
        assert '"bacalhau_metrics"in[tags]' in squeezed(output.conditions)


def test_ticks_and_ruby_script_agree_with_the_script(plugins: dict[str, list[Plugin]]) -> None:
    script = (LOGSTASH_DIR / "ruby" / "edge_metrics.rb").read_text()
    heartbeat = only(plugins["metrics"], "input", "heartbeat").settings
    (tick_tag,) = heartbeat["tags"]
    assert f'TICK_TAG = "{tick_tag}"' in script
    ruby = only(plugins["metrics"], "filter", "ruby").settings
    assert ruby["path"] == "/usr/share/logstash/ruby/edge_metrics.rb"
    assert ruby["script_params"]["window_seconds"] == "${AGGREGATE_DURATION:60}"
    assert ruby["script_params"]["min_count"] == "${TOP_N_MIN_COUNT:1}"
    assert ruby["script_params"]["region"] == "${REGION}"
    assert 'METRIC_TAG = "bacalhau_metrics"' in script


def test_the_metrics_journal_lives_on_the_host_mount(plugins: dict[str, list[Plugin]]) -> None:
    """The aggregation's journal must outlive the container like the queues it complements, so
    its state_dir is under path.data, which jobs/logstash.yaml mounts read-write from the host."""
    ruby = only(plugins["metrics"], "filter", "ruby").settings
    state_dir = Path(ruby["script_params"]["state_dir"])
    data = Path(settings_yml()["path.data"])
    assert state_dir.parent == data
    job = yaml.safe_load((LOGSTASH_DIR.parent / "jobs" / "logstash.yaml").read_text())
    (task,) = job["Tasks"]
    mounts = {m["Target"]: m["Source"]["Params"] for m in task["InputSources"]}
    assert mounts[str(data)]["ReadWrite"] is True


def test_every_environment_variable_is_a_documented_one() -> None:
    referenced = {
        match.group(1)
        for path in (LOGSTASH_DIR / "pipeline").glob("*.conf")
        for match in ENV_REFERENCE.finditer(path.read_text())
    }
    assert referenced == PIPELINE_ENV


def test_dockerfile_pins_the_base_and_copies_what_the_pipelines_name() -> None:
    dockerfile = (LOGSTASH_DIR / "Dockerfile").read_text()
    # The base is a build arg (a stack may pin its digest); its default is the pinned tag.
    base = re.search(
        r"^ARG LOGSTASH_BASE=(\S+)\nFROM \$\{LOGSTASH_BASE\}$", dockerfile, re.MULTILINE
    )
    assert base and base.group(1) == LOGSTASH_BASE_IMAGE
    assert re.fullmatch(
        r"docker\.elastic\.co/logstash/logstash-oss:\d+\.\d+\.\d+", LOGSTASH_BASE_IMAGE
    )
    assert re.search(
        r"logstash-plugin install --version \d+\.\d+\.\d+ logstash-output-opensearch", dockerfile
    )
    for copied in (
        "/usr/share/logstash/pipeline/",
        "/usr/share/logstash/ruby/",
        "/usr/share/logstash/config/",
    ):
        assert copied in dockerfile


def plugin_gems(plugins: dict[str, list[Plugin]]) -> set[str]:
    """The gem of every plugin and codec the pipelines name (pipeline in/out are core)."""
    gems = set()
    for pipeline in plugins.values():
        for plugin in pipeline:
            if plugin.name != "pipeline":
                gems.add(f"logstash-{plugin.section}-{plugin.name}")
            codec = plugin.settings.get("codec")
            if codec is not None:
                name = codec if isinstance(codec, str) else next(iter(codec))
                gems.add(f"logstash-codec-{name}")
    return gems


def test_the_image_build_fails_when_a_plugin_the_pipelines_name_is_missing(
    plugins: dict[str, list[Plugin]],
) -> None:
    dockerfile = (LOGSTASH_DIR / "Dockerfile").read_text()
    checked = set(re.findall(r"\blogstash-(?:input|output|filter|codec)-[a-z0-9_]+", dockerfile))
    assert plugin_gems(plugins) <= checked, plugin_gems(plugins) - checked


def test_index_template_maps_keywords_geo_point_and_window_dates() -> None:
    template = json.loads((LOGSTASH_DIR / "templates" / "bacalhau-logs-metrics.json").read_text())
    assert template["index_patterns"] == ["bacalhau-logs-metrics-*"]
    fields = template["template"]["mappings"]["properties"]
    assert fields["location"]["type"] == "geo_point"
    assert fields["window_start"]["type"] == fields["window_end"]["type"] == "date"
    for keyword in ("metric", "key", "region", "country", "city"):
        assert fields[keyword]["type"] == "keyword"
    assert fields["host"]["properties"]["name"]["type"] == "keyword"
    for number in ("count", "requests", "bytes_sent"):
        assert fields[number]["type"] == "long"


def test_dashboard_objects_reference_each_other_and_mapped_fields() -> None:
    lines = (LOGSTASH_DIR / "dashboards" / "bacalhau-logs.ndjson").read_text().splitlines()
    objects = [json.loads(line) for line in lines]
    ids = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in ids, ref
    (pattern,) = [o for o in objects if o["type"] == "index-pattern"]
    assert pattern["attributes"]["title"] == "bacalhau-logs-metrics-*"
    assert [o["type"] for o in objects].count("dashboard") == 1
    mapped = json.loads((LOGSTASH_DIR / "templates" / "bacalhau-logs-metrics.json").read_text())
    fields = mapped["template"]["mappings"]["properties"]
    script = (LOGSTASH_DIR / "ruby" / "edge_metrics.rb").read_text()
    for vis in (o for o in objects if o["type"] == "visualization"):
        state = json.loads(vis["attributes"]["visState"])
        for agg in state["aggs"]:
            field = agg["params"].get("field")
            if field:
                assert field.split(".")[0] in fields, (vis["id"], field)
        source = json.loads(vis["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        metric = source["query"]["query"].removeprefix("metric:")
        assert metric in {"summary", "status"} or re.search(rf"\b{metric}\b", script), metric


def test_aws_iam_auth_signs_with_the_node_role_for_the_domains_region(
    plugins: dict[str, list[Plugin]],
) -> None:
    outputs = [p for p in plugins["metrics"] if p.section == "output"]
    signed = [p for p in outputs if "auth_type" in p.settings]
    assert len(signed) == 1
    (aws_iam,) = signed
    assert aws_iam.settings["auth_type"] == {
        "type": "aws_iam",
        "region": "${OPENSEARCH_REGION:us-east-1}",
        "service_name": "es",
    }
    # Keys would be credential literals or env plumbing: the default chain (instance role) only.
    assert not CREDENTIAL_SETTINGS & aws_iam.settings.keys()
    assert not {"aws_access_key_id", "aws_secret_access_key"} & aws_iam.settings["auth_type"].keys()
    assert aws_iam.settings["ssl_certificate_verification"] is True
    assert '[@metadata][opensearch_auth]=="aws_iam"' in squeezed(aws_iam.conditions)
    # The aws_iam branch comes first, so a node with a user defined still signs on AWS.
    for other in outputs:
        if other is not aws_iam:
            assert 'not([@metadata][opensearch_auth]=="aws_iam")' in squeezed(other.conditions)


def test_auth_choice_reads_the_mode_and_user_from_the_environment(
    plugins: dict[str, list[Plugin]],
) -> None:
    choice = next(p for p in plugins["metrics"] if p.settings.get("id") == "opensearch-auth-choice")
    assert choice.settings["add_field"] == {
        "[@metadata][opensearch_auth]": "${OPENSEARCH_AUTH:}",
        "[@metadata][opensearch_user]": "${OPENSEARCH_USER:}",
    }


def test_logstash_job_passes_the_auth_mode_and_region() -> None:
    job = yaml.safe_load((LOGSTASH_DIR.parent / "jobs" / "logstash.yaml").read_text())
    env = job["Tasks"][0]["Env"]
    assert env["OPENSEARCH_AUTH"] == "{{.opensearch_auth}}"
    assert env["OPENSEARCH_REGION"] == "{{.opensearch_region}}"


REQUIRED_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)\}")


@pytest.mark.parametrize(
    ("backend", "node_env", "opensearch_auth", "opensearch_region"),
    [("docker", "local", "", ""), ("aws", "none", "aws_iam", "us-east-1")],
)
def test_every_variable_without_a_default_is_set_by_the_job_on_every_backend(
    backend: str, node_env: str, opensearch_auth: str, opensearch_region: str
) -> None:
    """Logstash refuses to load a pipeline naming an undefined `${VAR}` without a default, in any
    branch (logstash-core's environment substitution runs over every plugin setting). The stack
    drops empty env values from jobs (Bacalhau v1.9.3 refuses them, pkg/models/env_var.go), so
    on docker OPENSEARCH_AUTH and OPENSEARCH_REGION are absent: each such reference needs a
    default."""
    from infra.bacalhau.spec import without_empty_env_values, without_missing_env_references
    from infra.bacalhau.templates import render_job_file, template_variables
    from infra.components.local_region import NODE_ENV

    path = Path(__file__).resolve().parents[2] / "jobs" / "logstash.yaml"
    values = {name: f"sample-{name}" for name in template_variables(path)}
    values |= {"opensearch_auth": opensearch_auth, "opensearch_region": opensearch_region}
    available = NODE_ENV if node_env == "local" else frozenset()
    job = without_empty_env_values(
        without_missing_env_references(render_job_file(path, values), available)
    )
    defined = set(job["Tasks"][0]["Env"])
    required = {
        match.group(1)
        for conf in sorted((LOGSTASH_DIR / "pipeline").glob("*.conf"))
        for match in REQUIRED_REFERENCE.finditer(conf.read_text())
    }
    assert required - defined == set(), backend
