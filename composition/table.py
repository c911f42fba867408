"""The category x expert table: each cell's score, confidence interval and item count, and its rankings."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from composition.runner import Result

METRICS = ("likelihood", "accuracy")
Table = dict[str, dict[str, dict[str, float | int]]]


def item_score(result: Result, metric: str) -> float | None:
    """The result's score under `metric`: mean reference log-prob, or the exact score."""
    return result.loglik if metric == "likelihood" else result.exact


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (well-behaved at 0, 1 and small n)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap(values: Sequence[float], rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean (seeded: the same table gives the same interval)."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(rounds))
    return (means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1])


def cell(values: Sequence[float], metric: str) -> dict[str, float | int]:
    """score, low, high, n of one category x expert cell."""
    n = len(values)
    score = sum(values) / n if n else float("nan")
    low, high = wilson(sum(values), n) if metric == "accuracy" else bootstrap(values)
    return {"score": round(score, 4), "low": round(low, 4), "high": round(high, 4), "n": n}


def build_table(results: Sequence[Result], metric: str) -> Table:
    """Category -> expert -> cell, over the items that have a score under `metric`."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        score = item_score(result, metric)
        if score is not None and not result.error:
            values[result.item.category][result.expert].append(score)
    return {
        category: {expert: cell(scores, metric) for expert, scores in sorted(by_expert.items())}
        for category, by_expert in sorted(values.items())
    }


def rankings(table: Table) -> dict[str, list[str]]:
    """Per category, the experts best first (ties: more items, then name)."""
    return {
        category: sorted(cells, key=lambda e: (-float(cells[e]["score"]), -int(cells[e]["n"]), e))
        for category, cells in table.items()
    }


def markdown(table: Table, metric: str) -> str:
    """The table as Markdown: one row per category, one column per expert, best cell in bold."""
    experts = sorted({e for cells in table.values() for e in cells})
    lines = [
        f"| category ({metric}) | " + " | ".join(experts) + " |",
        "|---|" + "---|" * len(experts),
    ]
    for category, cells in table.items():
        best = rankings({category: cells})[category][0]
        row = []
        for expert in experts:
            c = cells.get(expert)
            if c is None:
                row.append("")
                continue
            text = f"{c['score']:.3f} [{c['low']:.3f}, {c['high']:.3f}] n={c['n']}"
            row.append(f"**{text}**" if expert == best else text)
        lines.append(f"| {category} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def heatmap(table: Table, metric: str, path: Any) -> None:
    """Write the table as a PNG heatmap (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = list(table)
    experts = sorted({e for cells in table.values() for e in cells})
    grid = [[float(table[c].get(e, {}).get("score", float("nan"))) for e in experts] for c in categories]
    figure, axes = plt.subplots(figsize=(1.3 * len(experts) + 2, 0.6 * len(categories) + 1.5))
    image = axes.imshow(grid, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(experts)), experts, rotation=30, ha="right")
    axes.set_yticks(range(len(categories)), categories)
    for row, category in enumerate(categories):
        for column, expert in enumerate(experts):
            c = table[category].get(expert)
            if c is not None:
                axes.text(column, row, f"{c['score']:.2f}\nn={c['n']}", ha="center", va="center", fontsize=7,
                          color="white")
    axes.set_title(f"category x expert ({metric})")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
