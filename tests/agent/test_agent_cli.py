"""CLI boundary: input validated before any work, with a usage error (exit 2)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from tests.agent.conftest import REPO, run_agent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--rate", "10"], "needs --output"),
        (["generate", "--count", "5"], "backfill needs"),
        (["generate", "--count", "5", "--start", "2025-01-02", "--end", "2025-01-01"], "after"),
        (["generate", "--rate", "5", "--count", "5", "--output", "x"], "cannot be combined"),
        (["generate", "--count", "0", "--start", "1h", "--end", "0s"], "at least 1"),
        (["query", "--logs", ".", "--named", "nope"], "invalid choice"),
        (["query", "--logs", ".", "--sql", "SELECT 1", "--since", "soon"], "not a time"),
        (["query", "--logs", "/does/not/exist", "--sql", "SELECT 1"], "not a directory"),
        (["query", "--logs", ".", "--named", "data-volume", "--sql", "SELECT 1"], "not allowed"),
        (["compact", "--once"], "--bucket"),
        (["query", "--logs", ".", "--sql", "SELECT 1", "--since", "999999999d"], "--since"),
        (["query", "--logs", ".", "--sql", "SELECT 1", "--timeout", "nan"], "positive"),
        (["query", "--logs", ".", "--sql", "SELECT 1", "--timeout", "0"], "positive"),
        (["query", "--logs", ".", "--sql", "SELECT 1", "--memory-limit", "lots"], "not a size"),
        (["query", "--logs", ".", "--sql", "SELECT 1", "--layout", "flat"], "invalid choice"),
        (
            ["generate", "--count", "5", "--start", "1h", "--end", "0s", "--output", "/nope/x.log"],
            "does not exist",
        ),
        (
            ["generate", "--count", "5", "--start", "1h", "--end", "0s", "--output", "/tmp"],
            "is a directory",
        ),
        (["generate", "--rate", "5", "--output", "/tmp"], "is a directory"),
    ],
)
def test_bad_input_is_a_usage_error(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("usage") is False


def test_generate_to_stdout_and_file_agree(tmp_path: Path) -> None:
    args = ["generate", "--seed", "9", "--count", "300", "--start", "2025-01-01", "--end",
            "2025-01-01T01:00:00"]  # fmt: skip
    stdout = run_agent(*args).stdout
    run_agent(*args, "--output", str(tmp_path / "out.log"))
    assert (tmp_path / "out.log").read_text() == stdout
    assert len([json.loads(line) for line in stdout.splitlines()]) == 300


def _logs(folder: Path, count: int) -> Path:
    folder.mkdir()
    hour = ("--start", "2025-01-01", "--end", "2025-01-01T01:00:00")
    output = ("--output", str(folder / "application.log"))
    run_agent("generate", "--seed", "3", "--count", str(count), *hour, *output)
    return folder


def _agent_buffered(*args: str, stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    """`python -m agent` with stdout block-buffered, as it is without the image's
    PYTHONUNBUFFERED: what the process has not flushed when it leaves is lost."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )


def test_an_answer_left_in_the_buffer_is_written(tmp_path: Path) -> None:
    """The process leaves without the interpreter's teardown (agent/__main__.py), which
    would have flushed stdout: a small answer, all of it still buffered, must arrive."""
    logs = _logs(tmp_path / "logs", 20)
    result = _agent_buffered("query", "--logs", str(logs), "--format", "json", "--sql",
                             "SELECT count(*) AS n FROM logs")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"n": 20}]


def test_an_answer_that_cannot_be_written_fails_the_process(tmp_path: Path) -> None:
    """stdout a pipe nobody reads: the final flush fails, and the exit code says so."""
    logs = _logs(tmp_path / "logs", 10)
    read, write = os.pipe()
    os.close(read)
    try:
        result = _agent_buffered(
            "query", "--logs", str(logs), "--sql", "SELECT count(*) AS n FROM logs", stdout=write
        )
    finally:
        os.close(write)
    assert result.returncode != 0
    assert "BrokenPipeError" in result.stderr


def _query_count(folder: Path) -> subprocess.CompletedProcess[str]:
    return run_agent("query", "--logs", str(folder), "--sql", "SELECT 1", check=False)


def _one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("query: error: ") and fragment in result.stderr


def test_symlink_loop_in_a_node_folder(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "application.log").symlink_to("application.log")
    _one_line_error(_query_count(tmp_path / "logs"), "symlink loop")


def test_symlink_loop_in_an_archive(tmp_path: Path) -> None:
    hour = tmp_path / "archive" / "region=r" / "dt=2025-01-01" / "hour=10"
    hour.mkdir(parents=True)
    (hour / "again").symlink_to(tmp_path / "archive" / "region=r")
    _one_line_error(_query_count(tmp_path / "archive"), "symlink loop")


def test_broken_symlink(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "application.log").symlink_to(tmp_path / "gone")
    _one_line_error(_query_count(tmp_path / "logs"), "application.log")


@pytest.mark.parametrize("what", ["folder", "file"])
def test_unreadable_input(
    tmp_path: Path, what: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Tests run as root, which reads anything: the refusal is the kernel's, simulated here.
    import agent.discover

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "application.log").write_text("{}\n")
    real_open, real_scandir = os.open, os.scandir

    # `os` is the module everyone shares (the query's scratch folder is removed through it).
    def refuse(path: object, *args: object, **options: object) -> object:
        if Path(str(path)).name == ("logs" if what == "folder" else "application.log"):
            raise PermissionError(13, "Permission denied", str(path))
        return (real_scandir if not args else real_open)(path, *args, **options)  # type: ignore[operator]

    monkeypatch.setattr(agent.discover.os, "scandir", refuse)
    monkeypatch.setattr(agent.discover.os, "open", refuse)
    assert main(["query", "--logs", str(tmp_path / "logs"), "--sql", "SELECT 1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("query: error: ") and "Permission denied" in err
    assert err.count("\n") == 1
