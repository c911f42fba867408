"""The k-nearest-neighbour vote over stored embeddings, optionally searched in a few principal directions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class KNNModel:
    """k nearest stored embeddings by cosine (one matrix product), votes weighted by similarity.

    Embeddings are held as float32 in memory (converting float16 per query would cost more than the product).
    With a `projection`, queries and stored rows are compared in its principal directions, renormalised: the
    product is memory-bound, so a third of the dimensions costs about a third of the time.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    n_classes: int
    k: int = 15
    sharpness: float = 20.0
    projection: np.ndarray | None = None
    kind: str = "knn"

    def logits(self, features: np.ndarray) -> np.ndarray:
        """See `ScoringModel.logits`: log of the similarity-weighted vote share, smoothed."""
        if self.projection is not None:
            features = _unit_rows(features @ self.projection)
        similarities = features @ self.embeddings.T
        k = min(self.k, similarities.shape[1])
        nearest = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        nearest_similarity = np.take_along_axis(similarities, nearest, axis=1)
        weights = np.exp(
            self.sharpness * (nearest_similarity - nearest_similarity.max(axis=1, keepdims=True))
        )
        votes = np.zeros((features.shape[0], self.n_classes), dtype=np.float64)
        np.add.at(votes, (np.arange(features.shape[0])[:, None], self.labels[nearest]), weights)
        share = votes / votes.sum(axis=1, keepdims=True)
        return np.log(share + 1e-3)

    def arrays(self) -> dict[str, np.ndarray]:
        """See `ScoringModel.arrays`; embeddings stored as float16 to keep the artifact small."""
        arrays: dict[str, np.ndarray] = {
            "embeddings": self.embeddings.astype(np.float16),
            "labels": self.labels.astype(np.int32),
            "n_classes": np.array(self.n_classes),
            "k": np.array(self.k),
            "sharpness": np.array(self.sharpness, dtype=np.float32),
        }
        if self.projection is not None:
            arrays["projection"] = self.projection.astype(np.float32)
        return arrays


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def fit_knn(features: np.ndarray, labels: np.ndarray, n_classes: int, seed: int, k: int = 15,
            dims: int = 0) -> KNNModel:
    """Store the embeddings; with `dims` > 0, their top principal directions (SVD, deterministic) and the
    rows projected onto them. There is nothing else to fit."""
    features = features.astype(np.float32)
    if not 0 < dims < features.shape[1]:
        return KNNModel(features, labels.astype(np.int32), n_classes, k)
    centred = features - features.mean(axis=0)
    _, _, directions = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    projection = directions[:dims].T.astype(np.float32)
    # The artifact keeps rows as float16: round them now, so a loaded model scores exactly like the fitted one.
    stored = _unit_rows(features @ projection).astype(np.float16).astype(np.float32)
    return KNNModel(stored, labels.astype(np.int32), n_classes, k, projection=projection)


def knn_from_arrays(arrays: dict[str, Any]) -> KNNModel:
    """Rebuild a model saved with `KNNModel.arrays()`."""
    projection = arrays.get("projection")
    return KNNModel(
        arrays["embeddings"].astype(np.float32),
        arrays["labels"],
        int(arrays["n_classes"]),
        int(arrays["k"]),
        float(arrays["sharpness"]),
        projection=None if projection is None else np.asarray(projection, dtype=np.float32),
    )
