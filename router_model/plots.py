"""Pictures of an evaluation: the confusion matrix and the reliability diagram (PNG, matplotlib)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Per equal-width confidence bin: its range, how many fell in it, mean confidence and accuracy."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        count = int(in_bin.sum())
        rows.append(
            {
                "low": float(low),
                "high": float(high),
                "n": count,
                "confidence": float(confidence[in_bin].mean()) if count else 0.0,
                "accuracy": float(correct[in_bin].mean()) if count else 0.0,
            }
        )
    return rows


def write_plots(report: dict[str, Any], directory: Path, title: str) -> list[Path]:
    """Write `confusion.png` and `reliability.png` for a report from `evaluate_router`; return their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    labels = report["confusion"]["labels"]
    matrix = np.asarray(report["confusion"]["matrix"], dtype=np.float64)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)
    figure, axes = plt.subplots(figsize=(7, 6))
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if shares[row, column] > 0.5 else "black"
        axes.text(column, row, f"{int(count)}", ha="center", va="center", fontsize=8, color=colour)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("truth")
    axes.set_title(f"{title}: macro-F1 {report['macro_f1']:.3f}, accuracy {report['accuracy']:.3f}")
    figure.colorbar(image, ax=axes, label="share of the true category")
    figure.tight_layout()
    confusion_path = directory / "confusion.png"
    figure.savefig(confusion_path, dpi=120)
    plt.close(figure)

    bins = [row for row in report["reliability"] if row["n"]]
    figure, axes = plt.subplots(figsize=(6, 6))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    centres = [(row["low"] + row["high"]) / 2 for row in bins]
    widths = [row["high"] - row["low"] for row in bins]
    axes.bar(centres, [row["accuracy"] for row in bins], width=widths, edgecolor="black", alpha=0.7,
             label="accuracy in bin")
    axes.plot([row["confidence"] for row in bins], [row["accuracy"] for row in bins], "o-", color="darkred",
              label="mean confidence vs accuracy")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence")
    axes.set_ylabel("accuracy")
    axes.set_title(f"{title}: ECE {report['ece']:.3f}")
    axes.legend(loc="upper left")
    figure.tight_layout()
    reliability_path = directory / "reliability.png"
    figure.savefig(reliability_path, dpi=120)
    plt.close(figure)
    return [confusion_path, reliability_path]
