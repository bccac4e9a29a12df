"""Stopping on SIGTERM (what Bacalhau sends) and SIGINT (Ctrl-C).

Long-running loops (`compact`, live `generate`) finish their current step and return. A query
is cancelled: its DuckDB connections are interrupted, and it ends with a one-line message.
"""

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def install_stop_handlers(stop: threading.Event) -> None:
    """Set `stop` on SIGTERM/SIGINT so a loop finishes its current step and returns."""

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)


class Cancellation:
    """Set once, by a signal; whoever runs something long says how to stop it (`stopping`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stops: list[Callable[[], None]] = []
        self.signum: int | None = None

    def cancel(self, signum: int) -> None:
        with self._lock:
            self.signum = signum
            stops = list(self._stops)
        for stop in stops:
            stop()

    @contextmanager
    def stopping(self, stop: Callable[[], None]) -> Iterator[None]:
        """Call `stop` if the cancellation comes while this block runs (or came before)."""
        with self._lock:
            self._stops.append(stop)
            cancelled = self.signum is not None
        if cancelled:
            stop()
        try:
            yield
        finally:
            with self._lock:
                self._stops.remove(stop)


@contextmanager
def cancel_on_signals(cancellation: Cancellation) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT cancel `cancellation` at once; a second one
    ends the process. Outside the main thread (where signals cannot be handled) it does nothing.

    A Python signal handler runs in the main thread only between two bytecodes, so never while
    that thread waits inside DuckDB: Ctrl-C would wait for the query to finish. Python's own C
    handler, though, writes the signal's number to the wakeup file descriptor as the signal
    arrives, whatever the main thread is doing; a thread of ours reads it there. No signal is
    blocked, so nothing changes for processes started later, and the handlers are restored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def watch() -> None:
        while byte := os.read(read_end, 1):
            if cancellation.signum is None:
                cancellation.cancel(byte[0])
            else:
                os._exit(128 + byte[0])

    previous = {signum: signal.signal(signum, _noted) for signum in _STOP_SIGNALS}
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="agent-signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(write_end)  # the watcher reads the end of the pipe and returns
        watcher.join()
        os.close(read_end)


def _noted(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: nothing left to do, the watcher has acted on the signal."""
