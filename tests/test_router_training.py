"""Training on tiny data: the artifact it writes, its determinism, and the licence guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_model.dataset import LabelledPrompt, balanced_sample, read_jsonl
from router_model.embedders import HashingEmbedder
from router_model.query_router import QueryRouter
from router_model.training import TrainConfig, train_router, write_router
from tests.fixtures_router import TINY_PROMPTS, write_prompts


def make_router(data: Path, out: Path, classifier: str = "logreg", seed: int = 0) -> QueryRouter:
    config = TrainConfig(data=[data], out=out, seed=seed, classifier=classifier, calibration_fraction=0.2)
    write_router(train_router(config, HashingEmbedder(512), log=lambda _line: None), out)
    return QueryRouter.load(out)


@pytest.mark.parametrize("classifier", ["knn+logreg", "logreg", "knn", "centroid", "mlp"])
def test_trained_router_routes_obvious_prompts(tiny_data: Path, tmp_path: Path, classifier: str) -> None:
    router = make_router(tiny_data, tmp_path / "artifact", classifier)
    assert router.categories == ("code", "legal", "medical")
    decision = router.route("how do i reverse a list in python")
    assert decision.category == "code"
    assert decision.ranked[0][0] == decision.category
    assert sorted(name for name, _ in decision.ranked) == sorted(router.categories)
    assert sum(p for _, p in decision.ranked) == pytest.approx(1.0)
    assert decision.confidence == decision.ranked[0][1]


def test_meta_records_sources_licences_and_versions(tiny_data: Path, tmp_path: Path) -> None:
    make_router(tiny_data, tmp_path / "artifact")
    meta = json.loads((tmp_path / "artifact" / "meta.json").read_text())
    assert meta["categories"] == ["code", "legal", "medical"]
    assert meta["embedder"]["kind"] == "hashing" and meta["dimension"] == 512
    source = meta["training"]["sources"]["tiny_test"]
    assert source["licence"] == "unknown"
    assert source["files"][0]["sha256"] == read_jsonl(tiny_data).sha256
    assert meta["training"]["permissive_only"] is False
    assert "numpy" in meta["library_versions"]
    assert meta["temperature"] > 0


def test_same_seed_gives_the_same_artifact(tiny_data: Path, tmp_path: Path) -> None:
    first = make_router(tiny_data, tmp_path / "a", "mlp", seed=3)
    second = make_router(tiny_data, tmp_path / "b", "mlp", seed=3)
    for name, array in first.model.arrays().items():
        np.testing.assert_array_equal(array, second.model.arrays()[name])
    assert first.temperature == second.temperature


def test_permissive_only_refuses_non_commercial_sources(tmp_path: Path) -> None:
    data = write_prompts(tmp_path / "nc.jsonl", TINY_PROMPTS, source="alpacaeval")
    config = TrainConfig(data=[data], out=tmp_path / "out", permissive_only=True)
    with pytest.raises(ValueError, match="alpacaeval"):
        train_router(config, HashingEmbedder(64), log=lambda _line: None)


def test_balanced_sample_caps_classes_and_sources() -> None:
    prompts = [LabelledPrompt(f"big {i}", "medical", "big") for i in range(100)]
    prompts += [LabelledPrompt(f"small {i}", "medical", "small") for i in range(5)]
    prompts += [LabelledPrompt(f"law {i}", "legal", "law") for i in range(3)]
    sample = balanced_sample(prompts, per_class=20, per_source=12, seed=0)
    sources = [p.source for p in sample]
    assert sources.count("small") == 5 and sources.count("big") == 12 and sources.count("law") == 3
    assert sample == balanced_sample(prompts, per_class=20, per_source=12, seed=0)


def test_read_jsonl_keeps_line_separators_inside_prompts(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"prompt": "one\u2028two", "domain": "general"}, ensure_ascii=False) + "\n\n")
    (prompt,) = read_jsonl(path).prompts
    assert prompt.text == "one\u2028two" and prompt.source == "odd"
