"""Serving side of the router: load an artifact once, then classify one prompt at a time."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_model.artifact import load_artifact
from router_model.calibration import softmax
from router_model.classifiers import ScoringModel
from router_model.embedders import Embedder, make_embedder

# Routing reads the start of a prompt; longer input would only cost tokenising time (the gateway sends at most
# 3,000 characters, but a direct caller may send anything).
MAX_CHARS = 4000


def bounded_text(text: object) -> str:
    """The text a router classifies: a string, at most MAX_CHARS long, valid UTF-8 (lone surrogates replaced)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[:MAX_CHARS]
    # Tokenizers written in Rust refuse lone surrogates ("surrogates not allowed"); JSON can carry them.
    return text.encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class RoutingDecision:
    """The category chosen for one prompt, its calibrated probability, and every alternative."""

    category: str
    confidence: float
    ranked: tuple[tuple[str, float], ...]


class QueryRouter:
    """Embedding plus classifier; safe to call from several worker threads (no per-call shared state)."""

    def __init__(
        self,
        categories: Sequence[str],
        embedder: Embedder,
        model: ScoringModel,
        temperature: float = 1.0,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.categories: tuple[str, ...] = tuple(categories)
        self.embedder = embedder
        self.model = model
        self.temperature = temperature
        self.meta: dict[str, Any] = meta or {}

    @classmethod
    def load(cls, artifact_dir: Path, torch_threads: int | None = 1) -> QueryRouter:
        """Read meta.json and the model; the embedder loads its weights on first use (or in `warm`).

        One torch thread per query (process-wide) is faster for a single short text than two that
        contend, and several worker threads still route several requests in parallel.
        """
        artifact = load_artifact(Path(artifact_dir))
        return cls(
            artifact.categories,
            make_embedder(artifact.embedder_spec, torch_threads, Path(artifact_dir)),
            artifact.model,
            artifact.temperature,
            artifact.meta,
        )

    def warm(self) -> None:
        """Load the embedder and run one dummy classification so the first request is fast."""
        self.route("warm up the router before the first request")

    def route(self, text: str) -> RoutingDecision:
        """Route one prompt (CPU-bound; call it off the event loop); any input gives a decision in bounded time."""
        return self.route_timed(text)[0]

    def route_timed(self, text: str) -> tuple[RoutingDecision, dict[str, float]]:
        """Route one prompt and say how many seconds went to `tokenise`, `embed` and `classify`."""
        vector, timings = self.embedder.embed_one_timed(bounded_text(text))
        started = time.perf_counter()
        probabilities = self.probabilities(vector[None, :])[0]
        decision = self._decision(probabilities)
        timings["classify"] = time.perf_counter() - started
        return decision, timings

    def route_batch(self, texts: Sequence[str]) -> list[RoutingDecision]:
        """Route many prompts at once (evaluation; the batch embedder is faster per prompt)."""
        return self.decisions(self.probabilities(self.embedder.embed([bounded_text(text) for text in texts])))

    def text_probabilities(self, texts: Sequence[str], cache_dir: Path | None = None) -> np.ndarray:
        """Calibrated probabilities for texts (evaluation: embeddings may come from a cache folder)."""
        from router_model.embedding_cache import embed_with_cache

        return self.probabilities(embed_with_cache(self.embedder, [bounded_text(t) for t in texts], cache_dir))

    def decisions(self, probabilities: np.ndarray) -> list[RoutingDecision]:
        """One decision per row of probabilities."""
        return [self._decision(row) for row in probabilities]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, shape (n, categories), for embeddings."""
        return softmax(self.model.logits(features), self.temperature)

    def _decision(self, probabilities: np.ndarray) -> RoutingDecision:
        if not np.isfinite(probabilities).all():
            # A degenerate embedding must still route: no category is preferred, the fallback decides.
            probabilities = np.full(len(self.categories), 1.0 / len(self.categories))
        order = np.argsort(-probabilities, kind="stable")
        ranked = tuple((self.categories[index], float(probabilities[index])) for index in order)
        return RoutingDecision(ranked[0][0], ranked[0][1], ranked)
