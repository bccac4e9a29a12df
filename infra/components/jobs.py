"""A region's long-running Bacalhau jobs, declared as Pulumi resources."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from infra.bacalhau.provider import BacalhauJob, BacalhauJobArgs
from infra.bacalhau.spec import without_empty_env_values, without_missing_env_references
from infra.bacalhau.templates import render_job_file
from infra.bacalhau.trust import CaSource

JOBS_DIR = Path(__file__).resolve().parents[2] / "jobs"


@dataclass(frozen=True)
class RegionJobsArgs:
    region: str
    env: str
    orchestrator_endpoint: pulumi.Input[str]
    bucket: pulumi.Input[str]
    archive_prefix: str
    s3_endpoint: pulumi.Input[str]
    s3_region: str
    opensearch_url: pulumi.Input[str]
    agent_image: pulumi.Input[str]
    logstash_image: pulumi.Input[str]
    aggregate_duration: int
    generator_enabled: bool
    log_rate: float
    api_key: pulumi.Input[str] | None = None
    # The `env:` variables this backend's nodes define; references to others are dropped from
    # the specs (see spec.without_missing_env_references). None keeps every reference.
    node_env: frozenset[str] | None = None
    # The canary region's RegionJobs (or its jobs): this region's job updates wait for them.
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    jobs_dir: Path = JOBS_DIR
    # How Logstash authenticates to OpenSearch: "aws_iam" (SigV4 with the node's role, for the
    # domain in ``opensearch_region``) or "" (basic auth when the node defines a user, else none).
    opensearch_auth: str = ""
    opensearch_region: str = ""
    # Where a self-hosted orchestrator publishes its certificate, to verify its API's TLS.
    orchestrator_ca: CaSource | None = None
    # Seconds each job's create or update waits until the new version has settled on the
    # region's nodes, and how long it must hold (BacalhauJob's rollout wait); a None timeout
    # returns once the orchestrator accepted the spec.
    rollout_timeout: float | None = None
    rollout_settle: float | None = None


class RegionJobs(pulumi.ComponentResource):
    """The Bacalhau jobs of one region. Creates:

    - ``{name}-logstash``: the log shipper daemon job, on every node labelled ``region=<region>``;
    - ``{name}-compactor``: the archive compactor service job (Count 1) in the region;
    - ``{name}-generate-logs``: the demo log generator daemon job, only when enabled.

    Env entries that would be empty or refer to variables the nodes lack are left out of every
    spec (Bacalhau refuses an empty value). With ``rollout_timeout``, each job's create or update
    returns only once its new version has settled on the nodes, so resources depending on this
    component wait for the region's rollout, not just for the API calls.
    """

    def __init__(
        self, name: str, args: RegionJobsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:index:RegionJobs", name, None, opts)
        self._name = name
        self._args = args
        self.logstash = self._job("logstash", "logstash.yaml")
        self.compactor = self._job("compactor", "compactor.yaml")
        self.generator = (
            self._job("generate-logs", "generate-logs.yaml") if args.generator_enabled else None
        )
        self.jobs: dict[str, BacalhauJob] = {"logstash": self.logstash, "compactor": self.compactor}
        if self.generator is not None:
            self.jobs["generate-logs"] = self.generator
        self.register_outputs(
            {
                "job_ids": {kind: job.job_id for kind, job in self.jobs.items()},
                "versions": {kind: job.version for kind, job in self.jobs.items()},
            }
        )

    def _job(self, suffix: str, file_name: str) -> BacalhauJob:
        path = self._args.jobs_dir / file_name
        node_env = self._args.node_env

        def rendered(values: dict[str, Any]) -> dict[str, Any]:
            job = render_job_file(path, values)
            if node_env is not None:
                job = without_missing_env_references(job, node_env)
            return without_empty_env_values(job)

        spec = pulumi.Output.all(**self._template_values()).apply(rendered)
        return BacalhauJob(
            f"{self._name}-{suffix}",
            BacalhauJobArgs(
                endpoint=self._args.orchestrator_endpoint,
                spec=spec,
                api_key=self._args.api_key,
                ca_source=self._args.orchestrator_ca,
                rollout_timeout=self._args.rollout_timeout,
                rollout_settle=self._args.rollout_settle,
            ),
            pulumi.ResourceOptions(parent=self, depends_on=list(self._args.depends_on)),
        )

    def _template_values(self) -> dict[str, Any]:
        args = self._args
        return {
            "region": args.region,
            "env": args.env,
            "bucket": args.bucket,
            "archive_prefix": args.archive_prefix,
            "s3_endpoint": args.s3_endpoint,
            "s3_region": args.s3_region,
            "opensearch_url": args.opensearch_url,
            "opensearch_auth": args.opensearch_auth,
            "opensearch_region": args.opensearch_region,
            "agent_image": args.agent_image,
            "logstash_image": args.logstash_image,
            "aggregate_duration": args.aggregate_duration,
            "log_rate": args.log_rate,
        }


def canary_dependencies(regions: Sequence[str], canary: str | None) -> Mapping[str, list[str]]:
    """For each region, the regions whose jobs must be updated first: with a canary, every other
    region waits for it; without one, all regions roll out together."""
    if canary is not None and canary not in regions:
        raise ValueError(
            f"canary region '{canary}' is not one of the regions: {', '.join(regions)}"
        )
    return {
        region: [canary] if canary is not None and region != canary else [] for region in regions
    }
