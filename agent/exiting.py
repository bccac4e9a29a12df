"""Databases left open for the process's exit, in `python -m agent` only.

The entry point leaves with `os._exit` once its output is flushed (agent/__main__.py), and the
kernel takes the process's memory back at once. Closing a DuckDB database just before that only
hands back memory the exit frees anyway, and DuckDB flushes every allocator arena when it closes
one: 13-17 ms for the sandbox after a 1M-event `--sql` query, 3 ms for the reader
(docs/bench-agent.md). So the entry point calls `leave_to_exit()` first, and `release` then
keeps a query's databases referenced (a connection that is collected closes itself) instead of
closing them. Any other caller (the tests, a library user) has them closed at once. Only
`query` releases this way: the compactor's service loop closes its own reader every pass.
"""

from typing import Protocol


class Closable(Protocol):
    def close(self) -> None: ...


_kept: list[Closable] | None = None


def leave_to_exit() -> None:
    """From now on, `release` leaves what it is given open until the process exits."""
    global _kept
    if _kept is None:
        _kept = []


def release(owner: Closable) -> None:
    """Close `owner`, or keep it open for the exit after `leave_to_exit()`."""
    if _kept is None:
        owner.close()
    else:
        _kept.append(owner)
