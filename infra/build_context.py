"""What an image build reads, reduced to a digest: the basis of immutable image tags.

ECR repositories here have immutable tags, so a tag must change exactly when the image would:
``context_digest`` hashes every file Docker would send as the build context (honouring the
context's ``.dockerignore`` like Docker does: later patterns win, ``!`` re-includes, ``**``
spans directories), plus the Dockerfile, the target platform and the build args. Pure: no Pulumi,
no Docker.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

DIGEST_LENGTH = 16
_NO_BUILD_ARGS: Mapping[str, str] = MappingProxyType({})


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    # A pattern naming a directory excludes everything below it.
    return re.compile("^" + "".join(out) + "(?:/.*)?$")


def ignore_rules(lines: Iterable[str]) -> list[tuple[re.Pattern[str], bool]]:
    """``.dockerignore`` lines as (regex, excludes) pairs, in file order."""
    rules = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        pattern = line.lstrip("!").strip().removeprefix("./").lstrip("/")
        rules.append((_pattern_regex(pattern), excludes))
    return rules


def is_ignored(relative: str, rules: Sequence[tuple[re.Pattern[str], bool]]) -> bool:
    ignored = False
    for regex, excludes in rules:
        if regex.match(relative):
            ignored = excludes
    return ignored


def context_files(context: Path) -> list[str]:
    """The context's files as Docker sends them, as sorted POSIX paths relative to it."""
    ignore_file = context / ".dockerignore"
    rules = ignore_rules(ignore_file.read_text().splitlines()) if ignore_file.exists() else []
    files = (path.relative_to(context).as_posix() for path in context.rglob("*") if path.is_file())
    return sorted(name for name in files if not is_ignored(name, rules))


def context_digest(
    context: Path,
    dockerfile: Path,
    platform: str,
    build_args: Mapping[str, str] = _NO_BUILD_ARGS,
) -> str:
    """A hex digest that changes when any sent file, the Dockerfile, the platform or a build arg
    changes."""
    digest = hashlib.sha256()
    for part in (platform.encode(), dockerfile.read_bytes()):
        digest.update(len(part).to_bytes(8, "big") + part)
    for name in context_files(context):
        content = (context / name).read_bytes()
        for part in (name.encode(), content):
            digest.update(len(part).to_bytes(8, "big") + part)
    # After the files, and only when there are any, so an image built without args keeps the tag
    # it had before args were hashed. The NUL a file name cannot contain keeps an arg from ever
    # reading like a (name, content) pair of the context.
    for key in sorted(build_args):
        for part in (b"\0" + key.encode(), build_args[key].encode()):
            digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def image_tag(
    stack: str,
    context: Path,
    dockerfile: Path,
    platform: str,
    build_args: Mapping[str, str] = _NO_BUILD_ARGS,
) -> str:
    """``<stack>-<first 16 hex digits of the context digest>``, e.g. ``prod-3f2a...``."""
    digest = context_digest(context, dockerfile, platform, build_args)
    return f"{stack}-{digest[:DIGEST_LENGTH]}"
