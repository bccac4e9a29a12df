"""The stack outputs the operator commands read, from a JSON file or the Pulumi Automation API.

Only ``orchestratorApiUrl`` is needed by every command; the other keys are optional in the file
(the AWS backend exports fewer of them), and a command that needs one names it when it is absent.

Without ``--outputs`` the Automation API reads the stack. For the local stack that
``scripts/dev`` manages, its file backend (``.pulumi-state``) and passphrase file are used unless
``PULUMI_BACKEND_URL`` / ``PULUMI_CONFIG_PASSPHRASE(_FILE)`` say otherwise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from infra.bacalhau.trust import CaSource

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_STATE = REPO_ROOT / ".pulumi-state"
DEFAULT_ARCHIVE_PREFIX = "logs/"
# `pulumi stack output --json` without --show-secrets prints secrets as this.
_HIDDEN_SECRET = "[secret]"


class OutputsError(ValueError):
    """Stack outputs that are missing, unreadable or lack a key a command needs."""


@dataclass(frozen=True)
class StackOutputs:
    stack: str
    raw: Mapping[str, Any]

    @property
    def api_url(self) -> str:
        return _http_url(self.require("orchestratorApiUrl"), "orchestratorApiUrl")

    @property
    def backend(self) -> str:
        return str(self.raw.get("backend") or "docker")

    @property
    def regions(self) -> list[str]:
        """The stack's regions: the keys of ``buckets`` (every backend exports it)."""
        return sorted(self._mapping("buckets"))

    @property
    def archive_prefix(self) -> str:
        return str(self.raw.get("archivePrefix") or DEFAULT_ARCHIVE_PREFIX)

    def bucket(self, region: str) -> str:
        return _text(self._mapping("buckets").get(region), f"buckets.{region}")

    def agent_image(self, region: str) -> str:
        """The agent image by digest; ``images`` is ``{kind: ref}`` or, per region on AWS,
        ``{region: {kind: ref}}``."""
        images = self._mapping("images")
        per_region = images.get(region)
        if isinstance(per_region, Mapping):
            return _text(per_region.get("agent"), f"images.{region}.agent")
        return _text(images.get("agent"), "images.agent")

    @property
    def s3_endpoint(self) -> str | None:
        """The S3 endpoint reachable from the operator's machine, or None for AWS defaults."""
        endpoint = self.raw.get("s3Endpoint")
        if isinstance(endpoint, str) and endpoint and "amazonaws.com" not in endpoint:
            return _http_url(endpoint, "s3Endpoint")
        return None

    def s3_keys(self) -> tuple[str, str] | None:
        """The local stack's MinIO keys when the outputs hold them in clear (the Automation API,
        or `stack output --json --show-secrets`); None means boto3's own credential chain."""
        access, secret = self.raw.get("minioAccessKey"), self.raw.get("minioSecretKey")
        if not (isinstance(access, str) and isinstance(secret, str) and access and secret):
            return None
        return None if _HIDDEN_SECRET in (access, secret) else (access, secret)

    def nodes(self) -> dict[str, list[str]] | None:
        """``{region: [node names]}``, or None when the backend does not export it."""
        nodes = self.raw.get("nodes")
        if not isinstance(nodes, Mapping):
            return None
        return {str(region): [str(n) for n in names] for region, names in nodes.items()}

    def jobs(self) -> dict[str, dict[str, str]]:
        return {
            str(region): {str(kind): str(job_id) for kind, job_id in kinds.items()}
            for region, kinds in self._mapping("jobs").items()
            if isinstance(kinds, Mapping)
        }

    @property
    def api_key(self) -> str | None:
        """The self-hosted orchestrator's generated API key, when the outputs hold it in clear
        (the Automation API, or `stack output --json --show-secrets`)."""
        key = self.raw.get("orchestratorApiKey")
        return key if isinstance(key, str) and key and key != _HIDDEN_SECRET else None

    @property
    def ca_source(self) -> CaSource | None:
        """Where a self-hosted AWS orchestrator publishes the certificate its API is verified
        against (``orchestratorCa``: an SSM parameter and its region); None: the system's CAs."""
        value = self.raw.get("orchestratorCa")
        if value in (None, {}):
            return None
        if not (
            isinstance(value, Mapping)
            and isinstance(value.get("parameter"), str)
            and isinstance(value.get("region"), str)
        ):
            raise OutputsError(
                f"stack output 'orchestratorCa' should be {{parameter, region}}, got {value!r}"
            )
        return CaSource(parameter=value["parameter"], region=value["region"])

    def job_id(self, region: str, kind: str) -> str | None:
        """A registered job of a region from the ``jobs`` output, None when not exported."""
        jobs = self.raw.get("jobs")
        kinds = jobs.get(region) if isinstance(jobs, Mapping) else None
        job_id = kinds.get(kind) if isinstance(kinds, Mapping) else None
        return job_id if isinstance(job_id, str) and job_id else None

    def require(self, key: str) -> Any:
        if self.raw.get(key) in (None, "", {}):
            raise OutputsError(
                f"stack output '{key}' is missing from stack '{self.stack}'; "
                "run `pulumi up` or pass a complete --outputs file"
            )
        return self.raw[key]

    def _mapping(self, key: str) -> Mapping[str, Any]:
        value = self.require(key)
        if not isinstance(value, Mapping):
            raise OutputsError(f"stack output '{key}' should be an object, got {value!r}")
        return value


def load_outputs(path: Path | None, stack: str) -> StackOutputs:
    """Outputs from ``path`` (`pulumi stack output --json`), else from the stack itself."""
    if path is None:
        return StackOutputs(stack, _from_automation_api(stack))
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise OutputsError(f"--outputs {path}: cannot read stack outputs ({error})") from None
    if not isinstance(document, dict):
        raise OutputsError(f"--outputs {path}: expected a JSON object of stack outputs")
    return StackOutputs(stack, document)


def _from_automation_api(stack: str) -> dict[str, Any]:
    # Imported here: the Automation API needs the Pulumi CLI, which --outputs users may lack.
    from pulumi import automation

    options = automation.LocalWorkspaceOptions(env_vars=local_backend_env(os.environ, stack))
    try:
        selected = automation.select_stack(stack_name=stack, work_dir=str(REPO_ROOT), opts=options)
        return {key: output.value for key, output in selected.outputs().items()}
    except Exception as error:  # the Automation API raises many unrelated types
        raise OutputsError(
            f"cannot read the outputs of stack '{stack}' through Pulumi ({error}); install the "
            "Pulumi CLI and set PULUMI_BACKEND_URL (and PULUMI_CONFIG_PASSPHRASE_FILE) for your "
            "backend, or pass --outputs FILE (from `pulumi stack output --json --show-secrets`)"
        ) from None


def local_backend_env(
    environ: Mapping[str, str], stack: str, state: Path = LOCAL_STATE
) -> dict[str, str]:
    """What ``scripts/dev`` exports, for whatever the environment does not already say, when
    ``stack`` lives in the local file backend (its `.pulumi/stacks/<project>/<stack>.json`)."""
    found: dict[str, str] = {}
    if not any((state / ".pulumi" / "stacks").glob(f"*/{stack}.json*")):
        return found
    if not environ.get("PULUMI_BACKEND_URL"):
        found["PULUMI_BACKEND_URL"] = state.as_uri()
    passphrase = state / "passphrase"
    configured = environ.get("PULUMI_CONFIG_PASSPHRASE") or environ.get(
        "PULUMI_CONFIG_PASSPHRASE_FILE"
    )
    if not configured and passphrase.is_file():
        found["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(passphrase)
    return found


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise OutputsError(f"stack output '{key}' is missing or not a string")
    return value


def _http_url(value: Any, key: str) -> str:
    text = _text(value, key)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutputsError(
            f"stack output '{key}': {text!r} is not an http(s) URL; expected e.g. "
            "http://127.0.0.1:1234"
        )
    return text
