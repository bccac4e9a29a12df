"""The values a stack renders one region's long-running jobs with, from its typed settings and
its outputs, and the rendering itself: what ``RegionJobs`` registers, ready for ``bacalhau job
run``. Pure: outputs come in as a mapping (``pulumi stack output --json``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infra import naming
from infra.bacalhau.spec import without_empty_env_values, without_missing_env_references
from infra.bacalhau.templates import render_job_file, template_variables
from infra.components.local_region import NODE_ENV as LOCAL_NODE_ENV
from infra.components.local_search import OPENSEARCH_PORT
from infra.components.local_storage import S3_PORT
from infra.paths import JOBS_DIR
from infra.settings import Backend, Settings
from infra.settings_aws import SearchPlacement

# The stack's long-running jobs, as ``python -m infra.jobs render`` names them.
STACK_JOBS = {
    "logstash": "logstash.yaml",
    "compactor": "compactor.yaml",
    "generate-logs": "generate-logs.yaml",
}
# The region the docker stack's jobs give MinIO (infra/stacks/local.py).
LOCAL_S3_REGION = "us-east-1"


class RenderError(ValueError):
    """A job that cannot be rendered: the message says which value is missing and where from."""


def job_path(job: str, jobs_dir: Path = JOBS_DIR) -> Path:
    if job not in STACK_JOBS:
        raise RenderError(f"unknown job '{job}'; one of {', '.join(STACK_JOBS)}")
    return jobs_dir / STACK_JOBS[job]


def node_env(settings: Settings) -> frozenset[str]:
    """The ``env:`` variables the backend's nodes define: MinIO keys locally, none on AWS (the
    instance role answers)."""
    return LOCAL_NODE_ENV if settings.backend is Backend.DOCKER else frozenset()


def _output(outputs: Mapping[str, Any], *path: str) -> str:
    value: Any = outputs
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            raise KeyError(".".join(path))
        value = value[key]
    if not isinstance(value, str) or not value:
        raise KeyError(".".join(path))
    return value


def _sources(
    settings: Settings, region: str, outputs: Mapping[str, Any]
) -> dict[str, Callable[[], str]]:
    """Each variable's value, computed on demand: those from outputs raise KeyError naming the
    output when it is absent."""
    project, stack = settings.project, settings.stack
    common: dict[str, Callable[[], str]] = {
        "region": lambda: region,
        "env": lambda: stack,
        "archive_prefix": lambda: settings.archive.prefix,
        "aggregate_duration": lambda: str(settings.jobs.aggregate_duration_seconds),
        "log_rate": lambda: str(settings.jobs.generator.rate),
        "bucket": lambda: _output(outputs, "buckets", region),
    }
    if settings.backend is Backend.DOCKER:
        # Jobs run with host networking inside the nodes and reach services by container name.
        return common | {
            "agent_image": lambda: _output(outputs, "images", "agent"),
            "logstash_image": lambda: _output(outputs, "images", "logstash"),
            "s3_endpoint": lambda: f"http://{naming.minio_host(project, stack)}:{S3_PORT}",
            "s3_region": lambda: LOCAL_S3_REGION,
            "opensearch_url": lambda: (
                f"http://{naming.opensearch_host(project, stack)}:{OPENSEARCH_PORT}"
            ),
            "opensearch_auth": lambda: "",
            "opensearch_region": lambda: "",
        }
    per_region = settings.aws.opensearch.placement is SearchPlacement.PER_REGION
    return common | {
        "agent_image": lambda: _output(outputs, "images", region, "agent"),
        "logstash_image": lambda: _output(outputs, "images", region, "logstash"),
        "s3_endpoint": lambda: _output(outputs, "s3Endpoints", region),
        "s3_region": lambda: region,
        "opensearch_url": lambda: _output(outputs, "opensearchUrls", region),
        "opensearch_auth": lambda: "aws_iam",
        "opensearch_region": lambda: region if per_region else settings.home_region,
    }


def template_values(
    path: Path,
    settings: Settings,
    region: str,
    outputs: Mapping[str, Any],
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every variable the job in ``path`` uses; ``overrides`` win over settings and outputs."""
    if region not in settings.region_names:
        raise RenderError(
            f"region '{region}' is not in stack '{settings.stack}' "
            f"(one of {', '.join(settings.region_names)})"
        )
    overrides = dict(overrides or {})
    needed = template_variables(path)
    unknown = sorted(set(overrides) - needed)
    if unknown:
        raise RenderError(
            f"--set {', '.join(unknown)}: not a variable of {path.name} "
            f"(it uses {', '.join(sorted(needed))})"
        )
    sources = _sources(settings, region, outputs)
    values, missing = {}, []
    for name in sorted(needed):
        if name in overrides:
            values[name] = overrides[name]
            continue
        try:
            values[name] = sources[name]()
        except KeyError as error:
            missing.append(f"{name} (stack output {error.args[0]})")
    if missing:
        raise RenderError(
            f"no value for {', '.join(missing)}: run `pulumi up` first, pass --outputs FILE "
            "from `pulumi stack output --json`, or give it with --set NAME=VALUE"
        )
    return values


def render(job: str, settings: Settings, values: Mapping[str, str]) -> dict[str, Any]:
    """The spec the stack registers for these values: env references the backend's nodes do
    not define, and empty values (Bacalhau refuses them), are left out, as ``RegionJobs`` does."""
    spec = render_job_file(job_path(job), values)
    spec = without_missing_env_references(spec, node_env(settings))
    return without_empty_env_values(spec)
