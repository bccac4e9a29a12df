"""Choose the files a query reads under `--logs`, pruning by the time window.

Two layouts: a node's log folder (`application.log`, `.1`, `.2.gz`, ...) and an archive root
in the hive layout (`region=/dt=/hour=` directories). Files and partitions outside the
window are never opened.
"""

import gzip
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from agent.archive import COMPACTED_NAME, RAW_SUFFIX, decode_sources, partition_values
from agent.archive import partition_span as span_of
from agent.times import EVENT_TIME_FORMAT


@dataclass(frozen=True)
class Window:
    """A half-open time window [since, until); None means unbounded."""

    since: datetime | None = None
    until: datetime | None = None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether [start, end) meets the window."""
        return (self.since is None or end > self.since) and (
            self.until is None or start < self.until
        )


@dataclass
class Selection:
    """The files to read, by format, and whether the same event may appear twice."""

    plain: list[Path] = field(default_factory=list)
    gzipped: list[Path] = field(default_factory=list)
    parquet: list[Path] = field(default_factory=list)
    pruned: int = 0
    archive: bool = False


def is_archive(root: Path) -> bool:
    """An archive root, or a partition inside one, has `key=value` directories."""
    if "=" in root.name:
        return True
    return any(entry.is_dir() and "=" in entry.name for entry in os.scandir(root))


def select_files(root: Path, window: Window) -> Selection:
    """The files under `root` that may hold events in `window`."""
    if is_archive(root):
        selection = Selection(archive=True)
        _walk_archive(root, partition_values(root.parts), window, selection)
    else:
        selection = Selection()
        _select_node_folder(root, window, selection)
    for paths in (selection.plain, selection.gzipped, selection.parquet):
        paths.sort()
    return selection


def _select_node_folder(root: Path, window: Window, selection: Selection) -> None:
    for entry in os.scandir(root):
        # Dotfiles are skipped: rotation compresses into a hidden temporary file.
        if entry.name.startswith(".") or not entry.is_file():
            continue
        path = Path(entry.path)
        if _node_file_outside(path, entry.stat().st_mtime, window):
            selection.pruned += 1
        elif entry.name.endswith(RAW_SUFFIX):
            selection.gzipped.append(path)
        else:
            selection.plain.append(path)


def _node_file_outside(path: Path, mtime: float, window: Window) -> bool:
    """Whether a node log file certainly holds no event in `window`.

    Lines are appended in time order and rotation keeps a file's mtime, so every event in a
    file is no later than its mtime and no earlier than its first line.
    """
    if window.since is not None:
        last_write = datetime.fromtimestamp(mtime, UTC).replace(tzinfo=None)
        if last_write < window.since:
            return True
    if window.until is not None:
        first = first_event_time(path)
        if first is not None and first >= window.until:
            return True
    return False


def first_event_time(path: Path) -> datetime | None:
    """The time of the file's first event, or None if it cannot be read cheaply."""
    opener = gzip.open if path.name.endswith(RAW_SUFFIX) else open
    try:
        with opener(path, "rb") as source:
            first = source.readline(64 * 1024)
        return datetime.strptime(json.loads(first)["time_local"], EVENT_TIME_FORMAT)
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        return None


def _walk_archive(
    directory: Path, inherited: dict[str, str], window: Window, selection: Selection
) -> None:
    entries = sorted(os.scandir(directory), key=lambda e: e.name)
    files = [e for e in entries if e.is_file() and not e.name.startswith(".")]
    if files:
        _select_partition_files(directory, files, selection)
    for entry in entries:
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        values = {**inherited, **partition_values([entry.name])}
        try:
            span = span_of(values)
        except ValueError:
            span = None  # not a time partition we understand: read it rather than drop it
        if span is not None and not window.overlaps(*span):
            selection.pruned += 1
            continue
        _walk_archive(Path(entry.path), values, window, selection)


def _select_partition_files(
    directory: Path, files: list[os.DirEntry[str]], selection: Selection
) -> None:
    """An hour uses compacted.parquet plus every raw object it was not built from."""
    names = {e.name for e in files}
    covered: set[str] = set()
    if COMPACTED_NAME in names:
        compacted = directory / COMPACTED_NAME
        covered = set(decode_sources(pq.read_metadata(compacted).metadata))
        selection.parquet.append(compacted)
    selection.gzipped.extend(
        directory / name for name in names if name.endswith(RAW_SUFFIX) and name not in covered
    )
