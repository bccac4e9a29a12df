"""scripts/dev tells a newcomer what it does and everything that is missing, at once."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash") or "/bin/bash"


def _dev(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path} if path is not None else None
    return subprocess.run(
        [BASH, str(REPO / "scripts" / "dev"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_help_and_no_arguments_print_usage():
    for args, code in ((("--help",), 0), (("-h",), 0), ((), 2)):
        result = _dev(*args)
        assert result.returncode == code, result.stderr
        assert "usage: ./scripts/dev COMMAND" in result.stdout
        assert "./scripts/test needs neither Docker nor Pulumi" in result.stdout
        assert "PULUMI_CONFIG_PASSPHRASE_FILE" in result.stdout


def test_every_missing_tool_is_named_with_where_to_get_it(tmp_path: Path):
    only = tmp_path / "bin"
    only.mkdir()
    dirname = shutil.which("dirname")
    assert dirname is not None
    (only / "dirname").symlink_to(dirname)
    result = _dev("up", path=str(only))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "scripts/dev: missing tools:"
    assert any(line.startswith("  docker: https://") for line in lines)
    assert any(line.startswith("  pulumi: https://") for line in lines)
    assert any(line.startswith("  python3 (3.11 or newer): https://") for line in lines)
    assert "(./scripts/test needs neither Docker nor Pulumi)" in lines
