"""Rendering jobs/*.yaml: every file renders with sample values and is a valid Bacalhau job."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.bacalhau.spec import validate, without_empty_env_values
from infra.bacalhau.templates import TemplateError, render_job_file, template_variables
from tests.bacalhau.conftest import JOBS_DIR

JOB_FILES = sorted(JOBS_DIR.rglob("*.yaml"))
CONTRACT_VARIABLES = {
    "region",
    "env",
    "bucket",
    "archive_prefix",
    "s3_endpoint",
    "s3_region",
    "opensearch_url",
    "opensearch_auth",
    "opensearch_region",
    "agent_image",
    "logstash_image",
    "aggregate_duration",
    "log_rate",
    "date",
    "since",
    "until",
}


def _id(path: Path) -> str:
    return str(path.relative_to(JOBS_DIR))


def test_all_expected_job_files_exist():
    names = {_id(p) for p in JOB_FILES}
    ops = {
        "error-analysis",
        "content-analysis",
        "peak-traffic",
        "security-analysis",
        "unauthorized-ips",
        "throttled-ips",
    }
    assert {"logstash.yaml", "compactor.yaml", "generate-logs.yaml"} <= names
    assert {f"queries/ops/{q}.yaml" for q in ops} <= names
    assert "queries/batch/top-referring-sites.yaml" in names


@pytest.mark.parametrize("path", JOB_FILES, ids=_id)
def test_job_file_renders_to_a_valid_job(path: Path, sample_values):
    """As the stack renders it: empty Env values (OPENSEARCH_AUTH locally) left out."""
    assert template_variables(path) <= CONTRACT_VARIABLES
    job = without_empty_env_values(render_job_file(path, sample_values))
    assert validate(job) == []
    assert "{{" not in repr(job)


@pytest.mark.parametrize("path", JOB_FILES, ids=_id)
def test_job_file_matches_the_api_spec(path: Path, sample_values, swagger):
    assert swagger.errors("models.Job", render_job_file(path, sample_values)) == []


@pytest.mark.parametrize("path", JOB_FILES, ids=_id)
def test_local_sources_only_mount_contract_paths(path: Path, sample_values):
    job = render_job_file(path, sample_values)
    allowed = {
        "/var/log/bacalhau-logs": "/app/logs",
        "/var/lib/bacalhau-logs/logstash": "/usr/share/logstash/data",
    }
    for source in job["Tasks"][0].get("InputSources", []):
        assert source["Source"]["Type"] != "localDirectory"
        if source["Source"]["Type"] == "local":
            assert allowed[source["Source"]["Params"]["SourcePath"]] == source["Target"]


@pytest.mark.parametrize("path", JOB_FILES, ids=_id)
def test_credentials_are_only_env_references(path: Path, sample_values):
    env = render_job_file(path, sample_values)["Tasks"][0].get("Env", {})
    for name, value in env.items():
        if any(word in name for word in ("KEY", "SECRET", "PASSWORD", "USER")):
            assert value.startswith("env:LOGS_"), name


def test_ops_queries_read_live_logs_without_network(sample_values):
    for path in sorted((JOBS_DIR / "queries" / "ops").glob("*.yaml")):
        job = render_job_file(path, sample_values)
        task = job["Tasks"][0]
        assert job["Type"] == "ops"
        assert task["Network"]["Type"] == "None"
        assert task["Engine"]["Params"]["Entrypoint"] == ["python", "-m", "agent"]
        params = task["Engine"]["Params"]["Parameters"]
        assert params[:5] == ["query", "--logs", "/app/logs", "--named", path.stem]
        assert params[-2:] == ["--format", "json"]


def test_batch_query_reads_the_region_archive_by_prefix(sample_values):
    job = render_job_file(JOBS_DIR / "queries/batch/top-referring-sites.yaml", sample_values)
    source = job["Tasks"][0]["InputSources"][0]["Source"]
    assert source["Type"] == "s3"
    assert source["Params"]["Key"] == "logs/region=eu-1/dt=2025-01*"
    assert source["Params"]["Bucket"] == sample_values["bucket"]


def test_region_jobs_are_constrained_and_networked_as_designed(sample_values):
    expectations = {
        "logstash.yaml": ("daemon", "Host"),
        "compactor.yaml": ("service", "Host"),
        "generate-logs.yaml": ("daemon", "None"),
    }
    for file_name, (job_type, network) in expectations.items():
        job = render_job_file(JOBS_DIR / file_name, sample_values)
        assert job["Type"] == job_type
        assert job["Constraints"] == [{"Key": "region", "Operator": "=", "Values": ["eu-1"]}]
        assert job["Tasks"][0]["Network"]["Type"] == network
    assert render_job_file(JOBS_DIR / "compactor.yaml", sample_values)["Count"] == 1


def test_missing_variable_names_the_variable_and_file(sample_values):
    del sample_values["bucket"]
    with pytest.raises(TemplateError, match=r"compactor\.yaml: template variable 'bucket'"):
        render_job_file(JOBS_DIR / "compactor.yaml", sample_values)


def test_values_cannot_inject_yaml(tmp_path: Path):
    path = tmp_path / "job.yaml"
    path.write_text('Name: "{{.name}}"\nType: batch\n')
    hostile = 'x"\nType: daemon\nCount: 9\n{{.other}}'
    assert render_job_file(path, {"name": hostile}) == {"Name": hostile, "Type": "batch"}


def test_unknown_template_expressions_are_errors(tmp_path: Path):
    path = tmp_path / "job.yaml"
    path.write_text('Name: "{{ upper .name }}"\n')
    with pytest.raises(TemplateError, match="unsupported template expression"):
        render_job_file(path, {"name": "x"})
