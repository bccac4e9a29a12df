"""``python -m infra.jobs render JOB --stack S --region R``: one of the stack's long-running jobs
as the stack registers it for that region, as YAML on stdout, ready for ``bacalhau job run``.

Settings come from ``Pulumi.<stack>.yaml`` (validated as ``pulumi up`` would); values that exist
only after ``pulumi up`` (bucket names, image digests, search endpoints) from the stack outputs,
through the Pulumi Automation API or ``--outputs FILE``, or from ``--set NAME=VALUE``.

Exit codes: 0 rendered; 2 a bad flag, stack file, region, or a value nobody could supply.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from infra.bacalhau.spec import validate
from infra.bacalhau.templates import TemplateError
from infra.jobs.values import STACK_JOBS, RenderError, job_path, render, template_values
from infra.paths import REPO_ROOT
from infra.settings import STACK_NAME, ConfigError, read_stack_file

EXIT_OK, EXIT_USAGE = 0, 2


class _Usage(ValueError):
    """A problem the user can fix; printed as one line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra.jobs",
        description="Render a stack's Bacalhau jobs ready to run by hand.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    render_cmd = commands.add_parser(
        "render",
        help="print one job for one region of a stack, as YAML",
        description=(
            "Print JOB as the stack registers it for REGION: every template variable filled in "
            "and env: references resolved for the stack's backend. Run it with "
            "`bacalhau job run FILE`."
        ),
    )
    render_cmd.add_argument("job", choices=sorted(STACK_JOBS), help="which job")
    render_cmd.add_argument("--stack", required=True, help="stack name (reads Pulumi.STACK.yaml)")
    render_cmd.add_argument("--region", required=True, help="one of the stack's regions")
    render_cmd.add_argument(
        "--outputs",
        type=Path,
        help="stack outputs as JSON (`pulumi stack output --json`); default: ask Pulumi",
    )
    render_cmd.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="give a template variable directly (e.g. agent_image=REPO@sha256:...); repeatable",
    )
    return parser


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    out = stdout or sys.stdout
    try:
        spec = _render(args)
    except (_Usage, ConfigError, RenderError, TemplateError) as error:
        message = str(error).replace("\n", " ")
        print(f"python -m infra.jobs: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    yaml.dump(spec, out, Dumper=_BlockDumper, sort_keys=False, width=100)
    return EXIT_OK


def _render(args: argparse.Namespace) -> dict[str, Any]:
    if not STACK_NAME.fullmatch(args.stack):
        raise _Usage(f"--stack {args.stack!r}: lowercase letters, digits and '-' only")
    settings = read_stack_file(REPO_ROOT / f"Pulumi.{args.stack}.yaml", args.stack, os.environ)
    path = job_path(args.job)
    values = template_values(
        path, settings, args.region, _outputs(args), _overrides(args.overrides)
    )
    spec = render(args.job, settings, values)
    problems = validate(spec)
    if problems:
        raise _Usage("; ".join(problems))
    return spec


def _overrides(pairs: Sequence[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise _Usage(f"--set {pair!r}: expected NAME=VALUE with a non-empty value")
        values[name] = value
    return values


def _outputs(args: argparse.Namespace) -> Mapping[str, Any]:
    if args.outputs is not None:
        try:
            document = json.loads(args.outputs.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise _Usage(f"--outputs {args.outputs}: cannot read stack outputs ({error})") from None
        if not isinstance(document, dict):
            raise _Usage(f"--outputs {args.outputs}: expected a JSON object of stack outputs")
        return document
    # Imported here: the Automation API needs the Pulumi CLI, which --outputs users may lack.
    from pulumi import automation

    try:
        stack = automation.select_stack(stack_name=args.stack, work_dir=str(REPO_ROOT))
        return {key: output.value for key, output in stack.outputs().items()}
    except Exception as error:  # the Automation API raises many unrelated types
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise _Usage(
            f"cannot read the outputs of stack '{args.stack}' through Pulumi ({first_line}); "
            "pass --outputs FILE (from `pulumi stack output --json`) or the values with --set"
        ) from None


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the Logstash entrypoint script) as readable literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)
