"""Routing quality from predictions: accuracy, F1 per category, confusion, calibration, coverage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from router_model.calibration import expected_calibration_error


def classification_report(
    categories: Sequence[str],
    truth: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    coverage: float = 0.9,
) -> dict[str, Any]:
    """Every score `coe router eval` prints, as one JSON-ready dict (label indices in, names out)."""
    n_classes = len(categories)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    per_category: dict[str, dict[str, float | int]] = {}
    f1_scores = []
    for index, name in enumerate(categories):
        true_positive = confusion[index, index]
        precision = _ratio(true_positive, confusion[:, index].sum())
        recall = _ratio(true_positive, confusion[index].sum())
        f1 = _ratio(2 * precision * recall, precision + recall)
        support = int(confusion[index].sum())
        per_category[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        if support:
            f1_scores.append(f1)  # categories absent from the data set do not drag the macro average
    correct = truth == predicted
    return {
        "n": len(truth),
        "accuracy": float(correct.mean()) if len(truth) else 0.0,
        "macro_f1": float(np.mean(f1_scores)) if f1_scores else 0.0,
        "ece": expected_calibration_error(confidence, correct),
        f"accuracy_at_{round(coverage * 100)}pct_coverage": _accuracy_at_coverage(
            confidence, correct, coverage
        ),
        "per_category": per_category,
        "confusion": {"labels": list(categories), "matrix": confusion.tolist()},
    }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def _accuracy_at_coverage(confidence: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    """Accuracy on the most confident `coverage` share (the rest would go to the generalist)."""
    if not len(confidence):
        return 0.0
    kept = max(1, round(len(confidence) * coverage))
    most_confident = np.argsort(-confidence, kind="stable")[:kept]
    return float(correct[most_confident].mean())


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p99 and mean of per-query latencies, in milliseconds."""
    if not seconds:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0, "n": 0}
    milliseconds = np.asarray(seconds) * 1000.0
    return {
        "p50_ms": float(np.percentile(milliseconds, 50)),
        "p99_ms": float(np.percentile(milliseconds, 99)),
        "mean_ms": float(milliseconds.mean()),
        "n": len(milliseconds),
    }
