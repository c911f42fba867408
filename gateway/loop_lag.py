"""How late the event loop wakes its timers: the gateway's own sign that it has no CPU to spare."""

from __future__ import annotations

import time

import anyio


class LoopLag:
    """A smoothed lag of a short periodic sleep; `busy` once it reaches `busy_ms` (0 disables the signal).

    The relay runs on the event loop, so when the loop wakes late every stream's next chunk is late too. That is
    when optional CPU work (a cascade's second routing stage) should give way; an idle loop wakes within ~1 ms.
    """

    def __init__(self, busy_ms: float, interval_s: float = 0.02, smoothing: float = 0.2) -> None:
        self.busy_ms = busy_ms
        self.interval_s = interval_s
        self.smoothing = smoothing
        self.lag_ms = 0.0

    @property
    def busy(self) -> bool:
        """Whether the loop is late enough that optional work should be skipped."""
        return self.busy_ms > 0 and self.lag_ms >= self.busy_ms

    def observe(self, late_ms: float) -> None:
        """Fold one measured lateness into the smoothed lag."""
        self.lag_ms += self.smoothing * (max(late_ms, 0.0) - self.lag_ms)

    async def run(self) -> None:
        """Measure until cancelled (a task of the app's lifespan)."""
        if self.busy_ms <= 0:
            return
        while True:
            started = time.perf_counter()
            await anyio.sleep(self.interval_s)
            self.observe((time.perf_counter() - started - self.interval_s) * 1000)
