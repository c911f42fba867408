"""Whether the machine's cores are contended, read from how long optional work took against the CPU it used."""

from __future__ import annotations

import time
from collections.abc import Callable


class Contention:
    """A smoothed ratio of wall time to CPU time of the second routing stage's calls.

    On a free core a call's wall time is its CPU time plus a thread hop (a ratio near 1). When the streams, the
    engines and the clients keep every core busy, the call waits for a core and for the interpreter lock, and the
    ratio climbs: a request routed by the second stage would queue. Past `limit` the selector keeps the fast
    stage's answer; one call every `probe_s` still runs, so the ratio follows the load back down.
    """

    def __init__(self, limit: float, probe_s: float = 1.0, weight: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.probe_s = probe_s
        self.weight = weight
        self.ratio = 1.0
        self._clock = clock
        self._last = clock()

    @property
    def high(self) -> bool:
        """True while the ratio is past the limit and no probe is due (`limit` 0: never)."""
        if self.limit <= 0 or self.ratio <= self.limit:
            return False
        return self._clock() - self._last < self.probe_s

    def observe(self, wall_s: float, cpu_s: float) -> None:
        """One call's wall and CPU seconds."""
        self._last = self._clock()
        # Under a millisecond of CPU the thread hop dominates: such calls count as a millisecond.
        self.ratio += self.weight * (wall_s / max(cpu_s, 1e-3) - self.ratio)
