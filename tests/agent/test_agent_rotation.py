"""Rotation: delaycompress scheme, keep limit, mtimes kept, and live mode end to end."""

import gzip
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.discover import Window
from agent.query import run_query
from agent.rotation import rotate
from tests.agent.conftest import REPO, event_line


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def test_rotation_steps_follow_the_contract(tmp_path: Path) -> None:
    live = tmp_path / "application.log"
    for generation in range(4):
        _write(live, f"gen{generation}\n")
        rotate(live, keep=3)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["application.log.1", "application.log.2.gz", "application.log.3.gz"]
    assert (tmp_path / "application.log.1").read_text() == "gen3\n"
    assert gzip.decompress((tmp_path / "application.log.2.gz").read_bytes()) == b"gen2\n"
    assert gzip.decompress((tmp_path / "application.log.3.gz").read_bytes()) == b"gen1\n"


def test_compression_keeps_the_mtime(tmp_path: Path) -> None:
    live = tmp_path / "application.log"
    _write(live, "a\n")
    rotate(live, keep=2)
    os.utime(tmp_path / "application.log.1", (1_700_000_000, 1_700_000_000))
    _write(live, "b\n")
    rotate(live, keep=2)
    assert (tmp_path / "application.log.2.gz").stat().st_mtime == 1_700_000_000


def test_keep_one_drops_older(tmp_path: Path) -> None:
    live = tmp_path / "application.log"
    for text in ("a\n", "b\n"):
        _write(live, text)
        rotate(live, keep=1)
    assert [p.name for p in tmp_path.iterdir()] == ["application.log.1"]
    assert (tmp_path / "application.log.1").read_text() == "b\n"


def test_live_mode_rotates_by_size_and_stops_on_sigterm(tmp_path: Path) -> None:
    output = tmp_path / "logs" / "application.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "generate",
            "--rate",
            "4000",
            "--max-bytes",
            "50000",
            "--keep",
            "3",
            "--output",
            str(output),
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    names = sorted(p.name for p in output.parent.iterdir())
    assert names == [
        "application.log",
        "application.log.1",
        "application.log.2.gz",
        "application.log.3.gz",
    ]
    for path in output.parent.iterdir():
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        assert len(data) <= 50000
        # Stopped cleanly: every file ends with a whole line.
        assert data.endswith(b"\n")


def _events_now(folder: Path) -> int:
    result = run_query(folder, "SELECT count(*) FROM logs", {}, Window(), io.StringIO())
    return int(str(result.rows[0][0]))


def test_query_during_compression_reads_each_line_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = tmp_path / "application.log"
    first = [event_line(request=f"/a/{i}") for i in range(30)]
    second = [event_line(request=f"/b/{i}") for i in range(20)]
    live.write_bytes(b"".join(first))
    rotate(live, keep=3)
    live.write_bytes(b"".join(second))
    seen: list[int] = []
    real_unlink = Path.unlink

    def query_first(self: Path, missing_ok: bool = False) -> None:
        if self.name == "application.log.1" and not seen:
            # `.2.gz` is in place and `.1` not yet removed: both hold `first`.
            assert (tmp_path / "application.log.2.gz").exists() and self.exists()
            seen.append(_events_now(tmp_path))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", query_first)
    rotate(live, keep=3)
    assert seen == [len(first) + len(second)]
