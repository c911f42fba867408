"""Two routers in a cascade: the static one decides when it is sure, the transformer only when it is not."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router_model.query_router import QueryRouter, RoutingDecision, bounded_text


class CascadeRouter:
    """`fast` answers when its calibrated confidence reaches `threshold`; otherwise `slow` decides.

    Both stages are ordinary router artifacts over the same categories; the decision says nothing about which
    stage made it except through `route_timed`'s `stage` timing key (1.0 = slow).
    """

    def __init__(self, fast: QueryRouter, slow: QueryRouter, threshold: float, meta: dict[str, Any]) -> None:
        if fast.categories != slow.categories:
            raise ValueError("the cascade's two routers must have the same categories in the same order")
        self.fast = fast
        self.slow = slow
        self.threshold = threshold
        self.categories = slow.categories
        self.meta = meta

    def warm(self) -> None:
        """Load both stages' weights and run one query through each."""
        self.fast.warm()
        self.slow.warm()

    def route(self, text: str) -> RoutingDecision:
        """See `QueryRouter.route`."""
        return self.route_timed(text)[0]

    def route_timed(self, text: str) -> tuple[RoutingDecision, dict[str, float]]:
        """Route one prompt; timings of the fast stage, plus the slow stage's under `slow_*` when it ran."""
        text = bounded_text(text)
        decision, timings = self.fast.route_timed(text)
        if decision.confidence >= self.threshold:
            timings["slow_share"] = 0.0
            return decision, timings
        started = time.perf_counter()
        decision, slow_timings = self.slow.route_timed(text)
        timings.update({f"slow_{stage}": seconds for stage, seconds in slow_timings.items()})
        timings["slow_share"] = 1.0
        timings["slow_total"] = time.perf_counter() - started
        return decision, timings

    def decisions(self, probabilities: np.ndarray) -> list[RoutingDecision]:
        """See `QueryRouter.decisions`."""
        return self.slow.decisions(probabilities)

    def route_first(self, text: str) -> tuple[RoutingDecision, bool]:
        """The fast stage's decision, and whether it is sure enough to stand (the gateway's split path)."""
        decision = self.fast.route(bounded_text(text))
        return decision, decision.confidence >= self.threshold

    def route_second(self, text: str) -> RoutingDecision:
        """The transformer stage's decision (for the texts `route_first` was unsure of)."""
        return self.slow.route(bounded_text(text))

    def route_batch(self, texts: Sequence[str]) -> list[RoutingDecision]:
        """See `QueryRouter.route_batch`."""
        return self.slow.decisions(self.text_probabilities(texts))

    def text_probabilities(self, texts: Sequence[str], cache_dir: Path | None = None) -> np.ndarray:
        """Calibrated probabilities per text: the fast stage's rows where it is sure, the slow stage's elsewhere."""
        probabilities = self.fast.text_probabilities(texts, cache_dir)
        unsure = np.flatnonzero(probabilities.max(axis=1) < self.threshold)
        if len(unsure):
            probabilities[unsure] = self.slow.text_probabilities([texts[i] for i in unsure], cache_dir)
        return probabilities


def load_router(artifact_dir: Path, torch_threads: int | None = 1) -> QueryRouter | CascadeRouter:
    """The router an artifact folder describes: one stage, or a cascade when meta.json names a fast stage."""
    from router_model.artifact import read_meta

    slow = QueryRouter.load(artifact_dir, torch_threads)
    cascade = read_meta(Path(artifact_dir)).get("cascade")
    if not cascade:
        return slow
    fast = QueryRouter.load(Path(artifact_dir) / cascade["fast"], torch_threads)
    return CascadeRouter(fast, slow, float(cascade["threshold"]), slow.meta)


FAST_DIR = "fast"


def attach_fast_stage(artifact_dir: Path, fast_dir: Path, threshold: float) -> None:
    """Copy a fast artifact into `artifact_dir/fast` and name it, with its threshold, in the meta.json."""
    import json
    import shutil

    from router_model.artifact import META_FILE, read_meta

    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"the cascade threshold is a probability in (0, 1], got {threshold}")
    meta = read_meta(artifact_dir)
    fast_meta = read_meta(fast_dir)
    if fast_meta["categories"] != meta["categories"]:
        raise ValueError(f"{fast_dir} routes to other categories than {artifact_dir}")
    target = artifact_dir / FAST_DIR
    if fast_dir.resolve() != target.resolve():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(fast_dir, target)
    meta["cascade"] = {"fast": FAST_DIR, "threshold": threshold}
    (artifact_dir / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")


AnyRouter = QueryRouter | CascadeRouter
