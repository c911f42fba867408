"""Order statistics for samples and for per-round figures: medians, percentiles, spread."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    """The 50th percentile."""
    return percentile(values, 50.0)


@dataclass(frozen=True)
class Spread:
    """A per-round figure summarised over rounds: the median and the lowest and highest round."""

    median: float
    low: float
    high: float
    rounds: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """Summarise the finite values (a round without data gives NaN and is left out)."""
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(median(finite), min(finite), max(finite), len(finite))

    def format(self, digits: int = 2, unit: str = "") -> str:
        """`median [low – high]`, or `n/a`."""
        if self.rounds == 0:
            return "n/a"
        if self.rounds == 1:
            return f"{self.median:.{digits}f}{unit}"
        return f"{self.median:.{digits}f}{unit} [{self.low:.{digits}f} – {self.high:.{digits}f}]"
