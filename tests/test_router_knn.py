"""The kNN vote searched in a few principal directions: the same neighbours where the data lives there, and saved
and loaded it scores exactly as fitted."""

from __future__ import annotations

import numpy as np

from router_model.classifiers import model_from_arrays
from router_model.knn import fit_knn


def clustered(seed: int, n: int = 600, dims: int = 48, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors near one of `classes` centres that span a few directions, plus small noise in all of them."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((classes, dims))
    centres[np.arange(classes), np.arange(classes)] = 1.0
    labels = rng.integers(0, classes, n)
    points = centres[labels] + 0.25 * rng.standard_normal((n, classes)) @ np.eye(classes, dims)
    points += 0.02 * rng.standard_normal((n, dims))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32), labels


def test_a_projected_knn_votes_like_the_full_one_and_is_smaller() -> None:
    features, labels = clustered(0)
    queries, truth = clustered(1, n=200)
    full = fit_knn(features, labels, 4, seed=0, k=15)
    projected = fit_knn(features, labels, 4, seed=0, k=15, dims=8)
    assert projected.projection is not None and projected.embeddings.shape == (600, 8)
    full_votes = full.logits(queries).argmax(axis=1)
    projected_votes = projected.logits(queries).argmax(axis=1)
    assert (projected_votes == full_votes).mean() >= 0.97
    assert (projected_votes == truth).mean() >= 0.9


def test_a_saved_projected_knn_scores_exactly_as_fitted() -> None:
    features, labels = clustered(2)
    queries, _ = clustered(3, n=50)
    fitted = fit_knn(features, labels, 4, seed=0, k=15, dims=8)
    loaded = model_from_arrays("knn", fitted.arrays())
    assert np.array_equal(fitted.logits(queries), loaded.logits(queries))


def test_dims_of_zero_or_the_whole_width_keep_the_plain_knn() -> None:
    features, labels = clustered(4, dims=16)
    for dims in (0, 16, 99):
        assert fit_knn(features, labels, 4, seed=0, dims=dims).projection is None
