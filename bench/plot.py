"""The report's picture: added TTFT and end-to-end ratio against concurrency, one line per path."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from bench.rounds import Comparison


@dataclass
class Curves:
    """Per path and concurrency: (added TTFT p50 ms, e2e ratio), medians over rounds; first writer wins."""

    points: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)

    def add(self, label: str, comparison: Comparison, target: str, levels: list[int], baseline: str = "direct") -> None:
        """Record one path's medians from a comparison, unless another mode already recorded that path."""
        if label in self.points:
            return
        if target == baseline:
            self.points[label] = {s: (0.0, 1.0) for s in levels}
            return
        self.points[label] = {s: (comparison.added_ttft_ms(target, baseline, s).median,
                                  comparison.e2e_ratio(target, baseline, s).median) for s in levels}


def draw(curves: Curves, out: Path) -> Path | None:
    """Write the PNG (matplotlib, no display needed); None when matplotlib is missing or nothing was measured."""
    if not curves.points:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, (ttft_axis, e2e_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, by_streams in curves.points.items():
        levels = sorted(s for s, (a, r) in by_streams.items() if not (math.isnan(a) or math.isnan(r)))
        if not levels:
            continue
        ttft_axis.plot(levels, [by_streams[s][0] for s in levels], marker="o", label=label)
        e2e_axis.plot(levels, [by_streams[s][1] for s in levels], marker="o", label=label)
    ttft_axis.set(xscale="log", xlabel="concurrent streams", ylabel="added TTFT p50, ms (linear below 1, then log)",
                  title="Added time to first token over direct")
    ttft_axis.set_yscale("symlog", linthresh=1.0)  # direct is 0 by definition; a median may even be negative
    lowest = min((a for by_streams in curves.points.values() for a, _ in by_streams.values() if a == a), default=0.0)
    ttft_axis.set_ylim(bottom=min(-0.5, 1.5 * lowest))
    e2e_axis.set(xscale="log", xlabel="concurrent streams", ylabel="end-to-end time / direct",
                 title="End-to-end ratio (1 = no overhead)")
    every_level = sorted({s for by_streams in curves.points.values() for s in by_streams})
    for axis in (ttft_axis, e2e_axis):
        axis.set_xticks(every_level, [str(s) for s in every_level])
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
