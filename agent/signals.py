"""Stop long-running loops cleanly on SIGTERM (what Bacalhau sends) and SIGINT."""

import signal
import threading
from types import FrameType


def install_stop_handlers(stop: threading.Event) -> None:
    """Set `stop` on SIGTERM/SIGINT so a loop finishes its current step and returns."""

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
