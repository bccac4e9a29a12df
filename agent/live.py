"""Live generation: append events at a steady rate to a file, rotating it by size."""

import threading
import time
from pathlib import Path

from agent.generate import EventFactory
from agent.rotation import rotate
from agent.times import EVENT_TIME_FORMAT, utc_now

TICK_SECONDS = 0.1


def run_live(
    output: Path, rate: float, max_bytes: int, keep: int, seed: int, stop: threading.Event
) -> int:
    """Append `rate` events per second to `output` until `stop` is set; returns events written.

    Pacing is against a monotonic clock, so a slow tick is caught up on the next one.
    A file is rotated before a line would take it past `max_bytes`.
    """
    factory = EventFactory(seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    written = 0
    sink = output.open("a", encoding="utf-8")
    try:
        size = sink.tell()
        while not stop.is_set():
            due = int((time.monotonic() - started) * rate) - written
            stamp = utc_now().strftime(EVENT_TIME_FORMAT)
            for _ in range(due):
                line = factory.line(stamp)
                if size and size + len(line) > max_bytes:
                    sink.close()
                    rotate(output, keep)
                    sink = output.open("a", encoding="utf-8")
                    size = 0
                sink.write(line)
                size += len(line)
                written += 1
            sink.flush()
            stop.wait(TICK_SECONDS)
    finally:
        sink.close()
    return written
