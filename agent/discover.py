"""Choose the files a query reads under `--logs`, pruning by the time window.

Two layouts: a node's log folder (`application.log`, `.1`, `.2.gz`, ... read flat) and an
archive in the hive layout (`region=/dt=/hour=` folders, also under a copy of a bucket that
holds `logs/`). The layout is what the user asked for (`--layout`) or what the folder holds;
files the chosen layout does not read are reported, never dropped silently.

A node folder is opened as a snapshot: every file is opened first, then the names are checked
to still point at the opened files (retrying if rotation renamed one meanwhile), and DuckDB
reads the open descriptors. Rotation compresses `X.1` into `X.2.gz` and removes `X.1` just
after; a gzip file with the same modification time as a plain file and that file's size is
that file's compressed copy (agent/rotation.py gives it that mtime on purpose) and is skipped,
so no line is read twice.
"""

import errno
import gzip
import json
import os
import resource
import stat
import struct
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb

from agent.archive import (
    COMPACTED_NAME,
    RAW_SUFFIX,
    SOURCES_KEY,
    IdColumns,
    decode_sources,
    id_columns,
    partition_values,
)
from agent.archive import partition_span as span_of
from agent.events import literal_path, quote
from agent.times import EVENT_TIME_FORMAT

PARTITION_KEYS = ("region", "dt", "hour")
_SNAPSHOT_ATTEMPTS = 5


class Layout(StrEnum):
    """How to read `--logs`."""

    AUTO = "auto"
    NODE = "node"
    ARCHIVE = "archive"


class InputError(Exception):
    """Input that cannot be read at all (unreadable, a symlink loop): one line to report."""


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


@dataclass(frozen=True)
class NodeFile:
    """A file of a node folder, held open (`fd`) so rotation cannot swap it underneath."""

    path: Path
    fd: int
    gzip: bool

    @property
    def sql_path(self) -> str:
        return f"/proc/self/fd/{self.fd}"


@dataclass(frozen=True)
class Compacted:
    """An hour's compacted.parquet, as its footer describes it."""

    path: Path
    sources: frozenset[str]
    ids: IdColumns
    rows: int


@dataclass
class ArchiveHour:
    """One hour partition: its compacted file (if readable) and the raw objects it lacks."""

    directory: Path
    raw: list[Path] = field(default_factory=list)
    compacted: Compacted | None = None


@dataclass
class Selection:
    """What a query reads, what it pruned and what it noticed on the way."""

    layout: Layout
    node_files: list[NodeFile] = field(default_factory=list)
    hours: list[ArchiveHour] = field(default_factory=list)
    pruned: int = 0
    notes: list[str] = field(default_factory=list)
    # Hours with a compacted file, until its footer is read (`_settle_hours`).
    unread_footers: list[ArchiveHour] = field(default_factory=list)

    @property
    def file_count(self) -> int:
        return len(self.node_files) + sum(
            len(h.raw) + (h.compacted is not None) for h in self.hours
        )

    def close(self) -> None:
        for item in self.node_files:
            with suppress(OSError):
                os.close(item.fd)
        self.node_files.clear()


def is_partition(name: str) -> bool:
    """`region=`, `dt=` or `hour=` with a value: a folder of the archive layout."""
    key, sep, value = name.partition("=")
    return bool(sep and value) and key in PARTITION_KEYS


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as scan:
            return sorted(scan, key=lambda e: e.name)
    except OSError as error:
        raise InputError(f"{directory}: cannot list: {error.strerror or error}") from None


def _reason(error: OSError) -> str:
    return "symlink loop" if error.errno == errno.ELOOP else error.strerror or str(error)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError as error:
        raise InputError(f"{entry.path}: {_reason(error)}") from None


def detect_layout(root: Path) -> Layout:
    """ARCHIVE for a partition folder, an archive root or a bucket copy; else NODE.

    Raises InputError when `root` holds both log files and archive partitions.
    """
    if is_partition(root.name):
        return Layout.ARCHIVE
    entries = [e for e in _entries(root) if not e.name.startswith(".")]
    folders = [e for e in entries if _is_dir(e)]
    files = [e for e in entries if e not in folders]
    if any(is_partition(f.name) for f in folders):
        if files:
            names = ", ".join(f.name for f in files[:3])
            raise InputError(
                f"{root} holds both log files ({names}) and archive partitions; "
                "pass --layout node or --layout archive"
            )
        return Layout.ARCHIVE
    if not files:
        # A copy of a bucket: the archive prefix (`logs/`) holds the partitions.
        for folder in folders:
            if any(is_partition(e.name) and _is_dir(e) for e in _entries(Path(folder.path))):
                return Layout.ARCHIVE
    return Layout.NODE


def select_files(
    root: Path, window: Window, con: duckdb.DuckDBPyConnection, layout: Layout = Layout.AUTO
) -> Selection:
    """The files under `root` that may hold events in `window` (node files are opened);
    `con`, a DuckDB connection that may open files, reads compacted files' footers."""
    if layout is Layout.AUTO:
        layout = detect_layout(root)
    selection = Selection(layout)
    if layout is Layout.ARCHIVE:
        values = partition_values(root.resolve().parts)
        _walk_archive(root, values, window, selection, set())
        _settle_hours(selection, con)
    else:
        _snapshot_node_folder(root, window, selection)
    if not selection.file_count and not selection.pruned:
        selection.notes.append(
            f"no log files under {root} (a node folder holds application.log*; an archive "
            "holds region=/dt=/hour= folders)"
        )
    return selection


def _raise_open_file_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if wanted + 64 > soft and soft != hard:
        target = hard if hard == resource.RLIM_INFINITY else min(hard, wanted + 256)
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _open_all(root: Path, selection: Selection) -> dict[str, int] | None:
    """Open every file of `root`; None if a name changed its file meanwhile."""
    entries = [e for e in _entries(root) if not e.name.startswith(".")]
    _raise_open_file_limit(len(entries))
    opened: dict[str, int] = {}
    skipped: list[str] = []
    try:
        for entry in entries:
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                if os.path.islink(entry.path):
                    raise InputError(f"{entry.path}: broken symlink") from None
                return None  # renamed or removed since the listing
            except OSError as error:
                raise InputError(f"{entry.path}: cannot open: {_reason(error)}") from None
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.close(fd)
                skipped.append(entry.name)
            elif not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                selection.notes.append(f"skipped {entry.path}: not a regular file")
            else:
                opened[entry.name] = fd
        for name, fd in opened.items():
            now, held = os.stat(root / name), os.fstat(fd)
            if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                return None
    except BaseException:
        for fd in opened.values():
            os.close(fd)
        raise
    if skipped:
        selection.notes.append(
            f"skipped {len(skipped)} subfolder(s) of {root} ({', '.join(skipped[:5])}): a "
            "node folder is read flat; use --layout archive for an archive"
        )
    return opened


def _snapshot_node_folder(root: Path, window: Window, selection: Selection) -> None:
    for _ in range(_SNAPSHOT_ATTEMPTS):
        notes = len(selection.notes)
        opened = _open_all(root, selection)
        if opened is not None:
            break
        del selection.notes[notes:]
    else:
        raise InputError(f"{root}: files kept being renamed while being opened; try again")
    twins = _compressed_twins(opened)
    for name, fd in opened.items():
        path = root / name
        if name in twins:
            selection.notes.append(
                f"skipped {path}: a compressed copy of {twins[name]} (rotation in progress)"
            )
            os.close(fd)
            continue
        node_file = NodeFile(path, fd, name.endswith(RAW_SUFFIX))
        if _node_file_outside(node_file, window):
            selection.pruned += 1
            os.close(fd)
        else:
            selection.node_files.append(node_file)


def gzip_size(fd: int) -> int | None:
    """The uncompressed size (mod 2**32) a gzip file records in its last 4 bytes."""
    size = os.fstat(fd).st_size
    if size < 18:
        return None
    return int(struct.unpack("<I", os.pread(fd, 4, size - 4))[0])


def _compressed_twins(opened: dict[str, int]) -> dict[str, str]:
    """gzip name -> plain name, for gzip files that are a plain file's compressed copy."""
    plain = {}
    for name, fd in opened.items():
        if not name.endswith(RAW_SUFFIX):
            held = os.fstat(fd)
            plain[held.st_mtime_ns] = (name, held.st_size)
    twins = {}
    for name, fd in opened.items():
        if name.endswith(RAW_SUFFIX) and os.fstat(fd).st_mtime_ns in plain:
            twin, size = plain[os.fstat(fd).st_mtime_ns]
            if gzip_size(fd) == size % (1 << 32):
                twins[name] = twin
    return twins


def _node_file_outside(node_file: NodeFile, window: Window) -> bool:
    """Whether a node log file certainly holds no event in `window`.

    Lines are appended in time order and rotation keeps a file's mtime, so every event in a
    file is no later than its mtime and no earlier than its first line.
    """
    if window.since is not None:
        mtime = os.fstat(node_file.fd).st_mtime
        if datetime.fromtimestamp(mtime, UTC).replace(tzinfo=None) < window.since:
            return True
    if window.until is not None:
        first = first_event_time(node_file)
        if first is not None and first >= window.until:
            return True
    return False


def first_event_time(node_file: NodeFile) -> datetime | None:
    """The time of the file's first event, or None if it cannot be read cheaply."""
    try:
        with open(os.dup(node_file.fd), "rb") as raw:
            source = gzip.GzipFile(fileobj=raw) if node_file.gzip else raw
            first = source.readline(64 * 1024)
        return datetime.strptime(json.loads(first)["time_local"], EVENT_TIME_FORMAT)
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        return None


def _walk_archive(
    directory: Path,
    inherited: dict[str, str],
    window: Window,
    selection: Selection,
    visited: set[tuple[int, int]],
) -> None:
    try:
        identity = os.stat(directory)
    except OSError as error:
        raise InputError(f"{directory}: {_reason(error)}") from None
    if (identity.st_dev, identity.st_ino) in visited:
        raise InputError(f"{directory}: symlink loop (this folder is already being read)")
    visited.add((identity.st_dev, identity.st_ino))
    entries = [e for e in _entries(directory) if not e.name.startswith(".")]
    folders = [e for e in entries if _is_dir(e)]
    files = [e for e in entries if e not in folders]
    if files:
        if "hour" in inherited and "dt" in inherited:
            _select_hour(directory, [e.name for e in files], selection)
        else:
            names = ", ".join(e.name for e in files[:3])
            selection.notes.append(
                f"ignored {len(files)} file(s) in {directory} ({names}): outside an hour partition"
            )
    for entry in folders:
        values = {**inherited, **partition_values([entry.name])}
        try:
            span = span_of(values)
        except ValueError:
            span = None  # not a time partition we understand: read it rather than drop it
        if span is not None and not window.overlaps(*span):
            selection.pruned += 1
            continue
        _walk_archive(Path(entry.path), values, window, selection, visited)


def read_compacted(
    paths: list[Path], con: duckdb.DuckDBPyConnection
) -> dict[Path, Compacted | str]:
    """Compacted files' footers, read by DuckDB (`con` may open files): each file's
    Compacted, or why it is not a readable compacted file.

    One query per kind of footer data for all files; if one file spoils it, file by file.
    """
    if not paths:
        return {}
    try:
        return _footers(paths, con)
    except (duckdb.Error, ValueError):
        pass
    found: dict[Path, Compacted | str] = {}
    for path in paths:
        try:
            found.update(_footers([path], con))
        except (duckdb.Error, ValueError) as error:
            found[path] = str(error).splitlines()[0] if str(error) else type(error).__name__
    return found


def _footers(paths: list[Path], con: duckdb.DuckDBPyConnection) -> dict[Path, Compacted | str]:
    listed = "[" + ", ".join(quote(literal_path(str(p))) for p in paths) + "]"
    by_name = {str(p): p for p in paths}

    def rows(sql: str) -> list[tuple[Any, ...]]:
        result = con.sql(sql).fetchall()
        if len(paths) == 1:  # whatever DuckDB calls it, it is that file
            return [(str(paths[0]), *row[1:]) for row in result]
        if any(row[0] not in by_name for row in result):
            raise ValueError("DuckDB named a file it was not given")
        return result

    counts = rows(f"SELECT file_name, num_rows FROM parquet_file_metadata({listed})")
    columns = rows(f"SELECT file_name, list(name) FROM parquet_schema({listed}) GROUP BY file_name")
    metadata = rows(
        f"SELECT file_name, key, value FROM parquet_kv_metadata({listed}) "
        f"WHERE key = {quote(SOURCES_KEY)}::BLOB"
    )
    names = {name: names for name, names in columns}
    sources: dict[str, dict[bytes, bytes]] = {}
    for name, key, value in metadata:
        sources.setdefault(name, {})[bytes(key)] = bytes(value)
    found: dict[Path, Compacted | str] = {}
    for name, count in counts:
        path = by_name[name]
        try:
            covered = frozenset(decode_sources(sources.get(name)))
        except ValueError as error:
            found[path] = str(error)
            continue
        found[path] = Compacted(path, covered, id_columns(names.get(name, [])), int(count))
    missing = [p for p in paths if p not in found]
    if missing:
        raise ValueError(f"no footer for {missing[0]}")
    return found


def _select_hour(directory: Path, names: list[str], selection: Selection) -> None:
    """An hour uses compacted.parquet plus every raw object it was not built from; which
    those are is known once the footers are read (`_settle_hours`)."""
    hour = ArchiveHour(directory, raw=[directory / n for n in names if n.endswith(RAW_SUFFIX)])
    others = [n for n in names if n != COMPACTED_NAME and not n.endswith(RAW_SUFFIX)]
    if others:
        selection.notes.append(
            f"ignored {len(others)} file(s) in {directory} ({', '.join(others[:3])}): "
            "neither raw .gz nor compacted.parquet"
        )
    if COMPACTED_NAME in names:
        selection.unread_footers.append(hour)
    elif hour.raw:
        selection.hours.append(hour)


def _settle_hours(selection: Selection, con: duckdb.DuckDBPyConnection) -> None:
    footers = read_compacted([h.directory / COMPACTED_NAME for h in selection.unread_footers], con)
    for hour in selection.unread_footers:
        path = hour.directory / COMPACTED_NAME
        footer = footers.get(path, "no footer")
        if isinstance(footer, str):
            selection.notes.append(
                f"{path}: unreadable ({footer}); reading this hour's raw objects instead"
            )
        else:
            hour.compacted = footer
            hour.raw = [p for p in hour.raw if p.name not in footer.sources]
        if hour.raw or hour.compacted:
            selection.hours.append(hour)
    selection.unread_footers.clear()
    selection.hours.sort(key=lambda h: h.directory.parts)
