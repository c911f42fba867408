"""Scores computed by hand on small arrays: F1, confusion, ECE, coverage, temperature."""

from __future__ import annotations

import numpy as np
import pytest

from router_model.calibration import expected_calibration_error, fit_temperature, softmax
from router_model.metrics import classification_report


def test_report_on_known_predictions() -> None:
    truth = np.array([0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0])
    confidence = np.array([0.9, 0.6, 0.8, 0.7, 0.5])
    report = classification_report(("a", "b", "c"), truth, predicted, confidence)
    assert report["accuracy"] == pytest.approx(0.6)
    assert report["per_category"]["b"] == {
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
        "f1": pytest.approx(0.8),
        "support": 2,
    }
    assert report["per_category"]["c"]["f1"] == 0.0
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert report["confusion"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # The least confident prediction (0.5, wrong) is dropped at 80% coverage.
    assert classification_report(("a", "b", "c"), truth, predicted, confidence, 0.8)[
        "accuracy_at_80pct_coverage"
    ] == pytest.approx(0.75)


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    confidence = np.full(10, 0.7)
    correct = np.array([1] * 7 + [0] * 3, dtype=bool)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0)
    assert expected_calibration_error(np.full(10, 0.9), np.zeros(10, dtype=bool)) == pytest.approx(0.9)


def test_temperature_softens_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=400)
    logits = rng.normal(size=(400, 3))
    logits[np.arange(400), labels] += 1.0
    overconfident = logits * 10
    temperature = fit_temperature(overconfident, labels)
    assert temperature > 3
    assert softmax(overconfident, temperature).sum(axis=1) == pytest.approx(np.ones(400))
