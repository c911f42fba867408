"""Recent latencies per expert, for the admin view: the last few observations, not a Prometheus histogram."""

from __future__ import annotations

from collections import deque

RECENT_SAMPLES = 100


class RecentLatency:
    """The last `size` observations per expert (seconds)."""

    def __init__(self, size: int = RECENT_SAMPLES) -> None:
        self._size = size
        self._samples: dict[str, deque[float]] = {}

    def observe(self, expert: str, seconds: float) -> None:
        """Remember one observation."""
        samples = self._samples.get(expert)
        if samples is None:
            samples = self._samples[expert] = deque(maxlen=self._size)
        samples.append(seconds)

    def forget(self, expert: str) -> None:
        """Drop an expert that left the registry."""
        self._samples.pop(expert, None)

    def summary(self, expert: str) -> dict[str, float | int | None]:
        """Count, median, 90th percentile and last of the recent observations (None when there are none)."""
        samples = list(self._samples.get(expert, ()))
        if not samples:
            return {"samples": 0, "p50_s": None, "p90_s": None, "last_s": None}
        ordered = sorted(samples)

        def quantile(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 6)

        last = round(samples[-1], 6)
        return {"samples": len(samples), "p50_s": quantile(0.5), "p90_s": quantile(0.9), "last_s": last}
