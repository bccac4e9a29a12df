"""Ctrl-C and Bacalhau's stop signal end a running query at once, with a one-line message.

A Python signal handler runs only between bytecodes of the main thread, never while that thread
waits inside DuckDB; before agent/signals.py's `cancel_on_signals`, SIGINT waited for the query
to finish (or for its --timeout) and SIGTERM killed the process without a word. A first version
blocked the signals instead, and processes started after an in-process query inherited the
block: the handlers and the signal mask must be as they were once a query returns.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli import main
from agent.signals import Cancellation
from tests.agent.conftest import REPO, write_events

# A three-way self-join of 3,000 events: 2.7e10 rows, far longer than the test waits.
ENDLESS = (
    "SELECT count(*) AS n FROM logs a, logs b, logs c "
    "WHERE a.body_bytes_sent + b.body_bytes_sent + c.body_bytes_sent < 0"
)


def test_a_stop_registered_during_a_cancellation_runs_at_once_and_only_while_registered() -> None:
    cancellation = Cancellation()
    calls: list[str] = []
    with cancellation.stopping(lambda: calls.append("first")):
        cancellation.cancel(signal.SIGINT)
        assert calls == ["first"]
    with cancellation.stopping(lambda: calls.append("late")):
        assert calls == ["first", "late"], "a block entered after the signal is stopped too"
    cancellation.cancel(signal.SIGTERM)
    assert calls == ["first", "late"], "a finished block is not stopped again"
    assert cancellation.signum == signal.SIGTERM


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_interrupts_a_running_query(tmp_path: Path, signum: int, code: int) -> None:
    folder = tmp_path / "logs"
    write_events(folder / "application.log", 5, 3000, "2025-01-01T10:00", "2025-01-01T11:00")
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "query", "--logs", str(folder), "--sql", ENDLESS,
         "--timeout", "300"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        time.sleep(2.0)  # started, and inside DuckDB
        assert process.poll() is None, process.communicate()
        sent = time.monotonic()
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"query: interrupted by {signal.Signals(signum).name}"
    )
    assert stdout == ""
    assert elapsed < 10, f"took {elapsed:.1f} s to stop"


def test_an_in_process_query_leaves_signal_handling_as_it_found_it(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    write_events(folder / "application.log", 5, 10, "2025-01-01T10:00", "2025-01-01T11:00")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert main(["query", "--logs", str(folder), "--sql", "SELECT count(*) FROM logs"]) == 0
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
    assert signal.set_wakeup_fd(-1) == -1
