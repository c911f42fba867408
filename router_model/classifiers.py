"""Classifiers over embeddings: fitted with scikit-learn, served as plain numpy arrays (no pickle)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from router_model.knn import KNNModel, fit_knn, knn_from_arrays


class ScoringModel(Protocol):
    """Turns embeddings into one logit per category; a temperature then makes them probabilities."""

    @property
    def kind(self) -> str:
        """The name `model_from_arrays` knows this model by."""
        ...

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Logits, shape (n, categories), for embeddings of shape (n, dimension)."""
        ...

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that `model_from_arrays` rebuilds this model from."""
        ...


@dataclass(frozen=True)
class LinearModel:
    """Multinomial logistic regression: one weight row per category."""

    coef: np.ndarray
    intercept: np.ndarray
    kind: str = "logreg"

    def logits(self, features: np.ndarray) -> np.ndarray:
        """See `ScoringModel.logits`."""
        return features @ self.coef.T + self.intercept

    def arrays(self) -> dict[str, np.ndarray]:
        """See `ScoringModel.arrays`."""
        return {"coef": self.coef.astype(np.float32), "intercept": self.intercept.astype(np.float32)}


@dataclass(frozen=True)
class CentroidModel:
    """Nearest centroid by cosine: the mean normalised embedding of each category."""

    centroids: np.ndarray
    kind: str = "centroid"

    def logits(self, features: np.ndarray) -> np.ndarray:
        """See `ScoringModel.logits`."""
        return features @ self.centroids.T

    def arrays(self) -> dict[str, np.ndarray]:
        """See `ScoringModel.arrays`."""
        return {"centroids": self.centroids.astype(np.float32)}


@dataclass(frozen=True)
class MLPModel:
    """One hidden ReLU layer, fitted by scikit-learn's MLPClassifier."""

    hidden_weights: np.ndarray
    hidden_bias: np.ndarray
    output_weights: np.ndarray
    output_bias: np.ndarray
    kind: str = "mlp"

    def logits(self, features: np.ndarray) -> np.ndarray:
        """See `ScoringModel.logits`."""
        hidden = np.maximum(features @ self.hidden_weights + self.hidden_bias, 0.0)
        return hidden @ self.output_weights + self.output_bias

    def arrays(self) -> dict[str, np.ndarray]:
        """See `ScoringModel.arrays`."""
        return {
            name: value.astype(np.float32)
            for name, value in (
                ("hidden_weights", self.hidden_weights),
                ("hidden_bias", self.hidden_bias),
                ("output_weights", self.output_weights),
                ("output_bias", self.output_bias),
            )
        }


@dataclass(frozen=True)
class KNNLogRegModel:
    """A weighted mix of the kNN's and the logistic regression's probabilities.

    The neighbours follow the real-user style of the project's own prompts; the linear model generalises
    across languages and phrasings; on the dev set the mix beats either alone.
    """

    knn: KNNModel
    linear: LinearModel
    knn_weight: float = 0.7
    kind: str = "knn+logreg"

    def logits(self, features: np.ndarray) -> np.ndarray:
        """See `ScoringModel.logits`: the log of the mixed probabilities."""
        mixed = self.knn_weight * _softmax(self.knn.logits(features))
        mixed += (1.0 - self.knn_weight) * _softmax(self.linear.logits(features))
        return np.log(mixed + 1e-9)

    def arrays(self) -> dict[str, np.ndarray]:
        """See `ScoringModel.arrays`."""
        parts = {f"knn_{name}": value for name, value in self.knn.arrays().items()}
        parts.update({f"linear_{name}": value for name, value in self.linear.arrays().items()})
        parts["knn_weight"] = np.array(self.knn_weight, dtype=np.float32)
        return parts


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def fit_logreg(
    features: np.ndarray, labels: np.ndarray, n_classes: int, seed: int, regularisation: float = 10.0
) -> LinearModel:
    """Fit a multinomial logistic regression (balanced class weights)."""
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=regularisation, max_iter=2000, class_weight="balanced", random_state=seed)
    fitted.fit(features, labels)
    coef = np.zeros((n_classes, features.shape[1]), dtype=np.float32)
    intercept = np.full(n_classes, -1e4, dtype=np.float32)  # a category absent from training never wins
    coef[fitted.classes_] = fitted.coef_
    intercept[fitted.classes_] = fitted.intercept_
    return LinearModel(coef, intercept)


def fit_centroid(features: np.ndarray, labels: np.ndarray, n_classes: int, seed: int) -> CentroidModel:
    """Average and renormalise the embeddings of each category."""
    centroids = np.zeros((n_classes, features.shape[1]), dtype=np.float32)
    for label in np.unique(labels):
        mean = features[labels == label].mean(axis=0)
        centroids[label] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return CentroidModel(centroids)


def fit_mlp(
    features: np.ndarray, labels: np.ndarray, n_classes: int, seed: int, hidden: int = 256
) -> MLPModel:
    """Fit a one-hidden-layer MLP with early stopping."""
    from sklearn.neural_network import MLPClassifier

    if len(np.unique(labels)) != n_classes:
        raise ValueError("the MLP needs at least one training example of every category")
    fitted = MLPClassifier(
        hidden_layer_sizes=(hidden,), alpha=1e-3, max_iter=200, early_stopping=True, random_state=seed
    )
    fitted.fit(features, labels)
    return MLPModel(fitted.coefs_[0], fitted.intercepts_[0], fitted.coefs_[1], fitted.intercepts_[1])


def fit_knn_logreg(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    seed: int,
    k: int = 30,
    regularisation: float = 3.0,
    knn_weight: float = 0.7,
    knn_dims: int = 0,
) -> KNNLogRegModel:
    """Fit both parts on the same data (the kNN searches `knn_dims` principal directions when > 0)."""
    return KNNLogRegModel(
        fit_knn(features, labels, n_classes, seed, k=k, dims=knn_dims),
        fit_logreg(features, labels, n_classes, seed, regularisation=regularisation),
        knn_weight,
    )


FITTERS: dict[str, Callable[..., ScoringModel]] = {
    "knn+logreg": fit_knn_logreg,
    "logreg": fit_logreg,
    "centroid": fit_centroid,
    "knn": fit_knn,
    "mlp": fit_mlp,
}


def model_from_arrays(kind: str, arrays: dict[str, Any]) -> ScoringModel:
    """Rebuild a model saved with `arrays()`."""
    if kind == "logreg":
        return LinearModel(arrays["coef"], arrays["intercept"])
    if kind == "centroid":
        return CentroidModel(arrays["centroids"])
    if kind == "knn":
        return knn_from_arrays(arrays)
    if kind == "mlp":
        return MLPModel(
            arrays["hidden_weights"], arrays["hidden_bias"], arrays["output_weights"], arrays["output_bias"]
        )
    if kind == "knn+logreg":
        knn = model_from_arrays("knn", _strip_prefix(arrays, "knn_"))
        linear = model_from_arrays("logreg", _strip_prefix(arrays, "linear_"))
        assert isinstance(knn, KNNModel) and isinstance(linear, LinearModel)
        return KNNLogRegModel(knn, linear, float(arrays["knn_weight"]))
    raise ValueError(f"unknown classifier kind {kind!r}; known: {', '.join(sorted(FITTERS))}")


def _strip_prefix(arrays: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {name[len(prefix) :]: value for name, value in arrays.items() if name.startswith(prefix)}
