"""A step that says it is still at work: no long step of preparing models stays silent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

TICK_S = 10.0  # the first-run promise is no silence longer than 15 s


@contextmanager
def ticking(say: Callable[[str], None], what: str, every_s: float = TICK_S) -> Iterator[None]:
    """Say `what: still at it (N s)` every `every_s` until the block ends (from a daemon thread)."""
    started = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every_s):
            say(f"{what}: still at it ({time.monotonic() - started:.0f} s)")

    thread = threading.Thread(target=tick, name="coe-ticking", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
