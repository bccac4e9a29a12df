"""CLI boundary: input validated before any work, with a usage error (exit 2)."""

import json
from pathlib import Path

import pytest
from conftest import run_agent

from agent.cli import main


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
    ],
)
def test_bad_input_is_a_usage_error(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_generate_to_stdout_and_file_agree(tmp_path: Path) -> None:
    args = ["generate", "--seed", "9", "--count", "300", "--start", "2025-01-01", "--end",
            "2025-01-01T01:00:00"]  # fmt: skip
    stdout = run_agent(*args).stdout
    run_agent(*args, "--output", str(tmp_path / "out.log"))
    assert (tmp_path / "out.log").read_text() == stdout
    assert len([json.loads(line) for line in stdout.splitlines()]) == 300
