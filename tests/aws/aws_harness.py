"""Run ``declare_aws`` under Pulumi mocks and record every resource it declares.

A module with its own name (not ``conftest``) so test modules import it unambiguously.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from infra.settings import Secrets, Settings, parse_settings
from infra.stacks.aws import declare_aws
from tests.support.pulumi_mocks import Declared, Recorded, declare_recording

REPO = Path(__file__).resolve().parents[2]
PROD = REPO / "Pulumi.prod.yaml"
PROJECT = "bacalhau-logs"
ACCOUNT = "123456789012"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/deployer"


@dataclass
class AwsRun(Recorded):
    secret_outputs: set[str] = field(default_factory=set)
    calls: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)

    def in_region(self, region: str) -> list[Declared]:
        return [r for r in self.resources if r.name.startswith(f"{region}-")]


def _provider_region(provider: str | None) -> str:
    """The region of a mocked provider reference (``...::aws-<region>::<id>``)."""
    return provider.split("::")[-2].removeprefix("aws-") if provider else "x"


def pulled(reference: str) -> str:
    """The reference the mocked ``NodeImagePull`` answers for ``reference``."""
    repository = reference.split("@", 1)[0]
    return f"{repository}@sha256:{hashlib.sha256(b'pulled:' + reference.encode()).hexdigest()}"


def ecr_password(region: str) -> str:
    return f"ecr-token-{region}"


def _fake_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    state = dict(args.inputs)
    digest = hashlib.sha256(args.name.encode()).hexdigest()
    state.setdefault("arn", f"arn:aws:mock:::{args.name}")
    if args.typ == "random:index/randomPassword:RandomPassword":
        state["result"] = digest[: int(args.inputs.get("length", 16))]
    elif args.typ == "aws:ec2/eip:Eip":
        state["publicIp"] = "198.51.100." + str(int(digest[:2], 16) % 250 + 1)
    elif args.typ == "aws:s3/bucket:Bucket":
        state["arn"] = f"arn:aws:s3:::{args.inputs['bucket']}"
    elif args.typ == "aws:opensearch/domain:Domain":
        state["endpoint"] = f"search-{args.inputs['domainName']}.es.amazonaws.com"
        state["dashboardEndpoint"] = f"{state['endpoint']}/_dashboards"
    elif args.typ == "aws:ecr/repository:Repository":
        region = _provider_region(args.provider)
        state["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{args.inputs['name']}"
    elif args.typ == "aws:iam/role:Role":
        state["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{args.name}"
    elif args.typ == "docker:index/image:Image":
        repository = args.inputs["imageName"].rsplit(":", 1)[0]
        state["repoDigest"] = f"{repository}@sha256:{digest}"
    elif args.typ == "pulumi-python:dynamic/aws:NodeImagePull":
        # Answers each reference with a marked digest, so a test can tell whether a job took its
        # image from here (after every node pulled it) or straight from the registry push.
        state["references"] = {name: pulled(ref) for name, ref in args.inputs["references"].items()}
    elif args.typ == "pulumi-python:dynamic/bacalhau:Job":
        state.update(job_id=f"j-{digest[:12]}", version=1, state="Running")
    return state


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, run: AwsRun) -> None:
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.run.record(args)
        return f"{args.name}-id", _fake_state(args)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        self.run.calls.append((args.token, dict(args.args), args.provider or ""))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": DEPLOYER, "userId": "AIDAMOCK", "id": ACCOUNT}, []
        if args.token == "aws:iam/getSessionContext:getSessionContext":
            return {"arn": args.args["arn"], "issuerArn": DEPLOYER, "id": DEPLOYER}, []
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            region = _provider_region(args.provider)
            return {
                "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{region}.amazonaws.com",
                "userName": "AWS",
                "password": ecr_password(region),
                "authorizationToken": "unused",
                "expiresAt": "2030-01-01T00:00:00Z",
                "id": region,
                "registryId": ACCOUNT,
                "region": region,
            }, []
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            region = _provider_region(args.provider)
            names = [f"{region}{suffix}" for suffix in "cba"]
            return {"names": names, "zoneIds": names, "id": region, "groupNames": []}, []
        if args.token == "aws:ec2/getAmi:getAmi":
            return {"id": "ami-0123456789abcdef0", "architecture": "x86_64", "name": "al2023"}, []
        raise AssertionError(f"unexpected invoke {args.token}")


def prod_config() -> dict[str, Any]:
    """Pulumi.prod.yaml's config block, with the project prefix taken off the keys."""
    config = yaml.safe_load(PROD.read_text())["config"]
    return {key.removeprefix(f"{PROJECT}:"): value for key, value in config.items()}


def prod_settings(**overrides: Any) -> Settings:
    raw = prod_config()
    raw.update(overrides)
    return parse_settings(raw, stack="prod")


def run_aws(settings: Settings, secrets: Secrets | None = None) -> AwsRun:
    """Declare ``settings`` under mocks, wait for every registration, resolve the outputs."""
    run = AwsRun()
    pulumi.runtime.set_mocks(RecordingMocks(run), project=PROJECT, stack="prod", preview=False)
    secrets = secrets or Secrets(orchestrator_token=None, orchestrator_api_key=None)

    def declare() -> pulumi.Output[Any]:
        outputs = declare_aws(settings, secrets)
        resolved = []
        for key, value in outputs.items():
            output = pulumi.Output.from_input(value)
            resolved.append(output.apply(lambda v, k=key: run.outputs.__setitem__(k, v)))
            flag = pulumi.Output.from_input(_secret_flag(output))
            resolved.append(
                flag.apply(lambda secret, k=key: run.secret_outputs.add(k) if secret else None)
            )
        return pulumi.Output.all(*resolved)

    declare_recording(run, declare)
    return run


async def _secret_flag(output: pulumi.Output[Any]) -> bool:
    return await output.is_secret()
