"""One progress line per region on stderr: redrawn in place on a terminal, plain lines otherwise.

On a terminal the block appears only once a job has run for ``delay`` seconds, so quick queries
stay quiet; later lines (``note``) are printed above the block and the block is redrawn below
them. Elsewhere (a file, CI) a region's line is printed each time its state changes, never for
the elapsed time alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

_UP_AND_CLEAR = "\x1b[{n}F"
_CLEAR_LINE = "\x1b[2K"


class Progress:
    def __init__(
        self,
        stream: TextIO,
        regions: Sequence[str],
        live: bool,
        delay: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._regions = list(regions)
        self._live = live
        self._delay = delay
        self._clock = clock
        self._started = clock()
        self._states: dict[str, str] = {}
        self._lines: dict[str, str] = {}
        self._drawn = 0
        self._lock = threading.Lock()

    def update(self, region: str, state: str, elapsed: float) -> None:
        """``state`` is what changed (nodes done/running/failed); elapsed is shown beside it."""
        with self._lock:
            changed = self._states.get(region) != state
            self._states[region] = state
            self._lines[region] = f"{region}: {state} [{elapsed:.0f}s]"
            if self._live:
                if self._drawn or self._clock() - self._started >= self._delay:
                    self._draw()
            elif changed:
                self._stream.write(self._lines[region] + "\n")
                self._stream.flush()

    def note(self, text: str) -> None:
        """A line that stays (a submitted job's ID): above the block on a terminal."""
        with self._lock:
            if self._live and self._drawn:
                self._stream.write(_UP_AND_CLEAR.format(n=self._drawn) + _CLEAR_LINE)
                self._stream.write(text + "\n")
                self._drawn = 0
                self._draw()
            else:
                self._stream.write(text + "\n")
            self._stream.flush()

    def close(self) -> None:
        """Leave the final state on screen (a terminal); nothing more is redrawn."""
        with self._lock:
            if self._live and self._drawn:
                self._draw()
            self._live = False

    def _draw(self) -> None:
        if self._drawn:
            self._stream.write(_UP_AND_CLEAR.format(n=self._drawn))
        lines = [self._lines.get(r, f"{r}: waiting") for r in self._regions]
        for line in lines:
            self._stream.write(_CLEAR_LINE + line + "\n")
        self._drawn = len(lines)
        self._stream.flush()
