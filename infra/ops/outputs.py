"""The stack outputs the operator commands read, from a JSON file or the Pulumi Automation API.

Only ``orchestratorApiUrl`` is needed by every command; the other keys are optional in the file
(the AWS backend exports fewer of them), and a command that needs one names it when it is absent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ARCHIVE_PREFIX = "logs/"


class OutputsError(ValueError):
    """Stack outputs that are missing, unreadable or lack a key a command needs."""


@dataclass(frozen=True)
class StackOutputs:
    stack: str
    raw: Mapping[str, Any]

    @property
    def api_url(self) -> str:
        return _text(self.require("orchestratorApiUrl"), "orchestratorApiUrl")

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
            return endpoint
        return None

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

    try:
        selected = automation.select_stack(stack_name=stack, work_dir=str(REPO_ROOT))
        return {key: output.value for key, output in selected.outputs().items()}
    except Exception as error:  # the Automation API raises many unrelated types
        raise OutputsError(
            f"cannot read the outputs of stack '{stack}' through Pulumi ({error}); install the "
            "Pulumi CLI and set PULUMI_BACKEND_URL for a local backend, or pass --outputs FILE "
            "(from `pulumi stack output --json`)"
        ) from None


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise OutputsError(f"stack output '{key}' is missing or not a string")
    return value
