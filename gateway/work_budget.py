"""A bounded share of one core for optional work (a cascade's second routing stage), whatever the load."""

from __future__ import annotations

import time
from collections.abc import Callable


class WorkBudget:
    """A token bucket of CPU seconds: it refills at `share` seconds per second up to `burst_s`.

    The loop-lag signal sees the event loop wake late; it does not see two cores saturated by the streams, the
    engines and the clients together, where every routed request's extra CPU becomes everyone's queueing. The
    budget bounds that extra whatever the cause: at a few requests a second every unsure query gets the second
    stage; at hundreds a second only as many as `share` of a core pays for, and the rest keep the fast stage's
    answer. `share` 0 turns the bound off.
    """

    def __init__(self, share: float, burst_s: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self.burst_s = burst_s
        self._clock = clock
        self._balance = burst_s
        self._at = clock()

    @property
    def available(self) -> bool:
        """Whether optional work may start now (the bucket is not in debt)."""
        if self.share <= 0:
            return True
        now = self._clock()
        self._balance = min(self.burst_s, self._balance + (now - self._at) * self.share)
        self._at = now
        return self._balance > 0

    def spend(self, cpu_s: float) -> None:
        """Charge the CPU seconds one piece of optional work took (it may leave the bucket in debt)."""
        if self.share > 0:
            self._balance -= cpu_s
