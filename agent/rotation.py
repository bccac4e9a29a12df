"""Size-based log rotation in logrotate's `delaycompress` scheme (docs/contracts.md).

`application.log` -> `application.log.1` (plain; the shipper may still be reading it)
-> `application.log.2.gz` -> `application.log.3.gz` ... up to `keep` rotated files.
"""

import gzip
import os
import shutil
from pathlib import Path


def rotated_name(live: Path, index: int) -> Path:
    """The path of the `index`-th rotated file (1 is plain, later ones gzip)."""
    suffix = f".{index}" if index == 1 else f".{index}.gz"
    return live.with_name(live.name + suffix)


def rotate(live: Path, keep: int) -> None:
    """Rotate `live` by one step, keeping at most `keep` rotated files.

    Every step is a rename except compressing `.1`, which writes a hidden temporary file
    (query tools skip dotfiles) and renames it into place, so no reader ever sees a
    partial `.gz`, and `.1` is removed right after. Between those two steps both hold the
    same lines; the `.gz` then has `.1`'s mtime and records `.1`'s size, which is how the
    reader knows it for a copy and reads the lines once (agent/discover.py).
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    rotated_name(live, keep).unlink(missing_ok=True)
    for index in range(keep - 1, 1, -1):
        older = rotated_name(live, index)
        if older.exists():
            older.rename(rotated_name(live, index + 1))
    first = rotated_name(live, 1)
    if first.exists() and keep >= 2:
        _compress(first, rotated_name(live, 2))
    if live.exists():
        live.rename(first)


def _compress(plain: Path, target: Path) -> None:
    """gzip `plain` into `target`, keeping its mtime: the query tool prunes files by it, and
    tells a compressed copy from its original by it. The mtime is set before the rename, so
    the copy is never visible with another one."""
    temporary = target.with_name(f".{target.name}.tmp")
    stat = plain.stat()
    with plain.open("rb") as source, gzip.open(temporary, "wb", compresslevel=6) as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
    os.utime(temporary, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    temporary.rename(target)
    plain.unlink()
