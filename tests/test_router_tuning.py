"""MiniLM fine-tuned on routing labels: each category's prompts move together, and the train command ships it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gateway.cli import main
from router_model.embedders import minilm_model_dir
from router_model.encoder_tuning import TuningConfig, _pooled, fine_tune_minilm, tuned_minilm
from router_model.onnx_embedder import ONNX_FILE, OnnxMiniLMEmbedder
from router_model.training import TrainConfig, training_sample
from tests.fixtures_router import TINY_PROMPTS

TEXTS = [text for texts in TINY_PROMPTS.values() for text in texts]
LABELS = np.array([index for index, texts in enumerate(TINY_PROMPTS.values()) for _ in texts])
QUICK = TuningConfig(epochs=6, batch_size=10, learning_rate=1e-4, warmup_steps=1)


def torch_vectors(model_dir: Path, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    encoder = AutoModel.from_pretrained(str(model_dir)).eval()
    with torch.no_grad():
        vectors = _pooled(encoder, AutoTokenizer.from_pretrained(str(model_dir)), texts, 128, torch)
    return np.asarray(vectors.numpy(), dtype=np.float32)


def centroid_margin(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine to the prompt's own category centroid minus the mean cosine to the other centroids."""
    centroids = np.stack([vectors[labels == k].mean(0) for k in range(labels.max() + 1)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    sims = vectors @ centroids.T
    own = sims[np.arange(len(labels)), labels]
    others = (sims.sum(1) - own) / (centroids.shape[0] - 1)
    return float((own - others).mean())


def test_fine_tuning_pulls_each_category_together(tmp_path: Path) -> None:
    tuned = fine_tune_minilm(TEXTS, LABELS, 3, tmp_path / "tuned", QUICK, log=lambda _line: None)
    before = centroid_margin(torch_vectors(minilm_model_dir(), TEXTS), LABELS)
    after = centroid_margin(torch_vectors(tuned, TEXTS), LABELS)
    assert after > before + 0.05, (before, after)
    assert json.loads((tuned / "tuning.json").read_text())["prompts"] == len(TEXTS)


def test_train_ships_the_tuned_encoder_as_onnx_and_reuses_it(tiny_data: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "artifact", tmp_path / "cache"
    assert main(["router", "train", "--data", str(tiny_data), "--out", str(out), "--embedder", "minilm-onnx",
                 "--tune-epochs", "30", "--cache", str(cache), "--per-class", "10", "--quiet"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["embedder"]["fine_tuned"]["epochs"] == 30
    [tuned] = cache.glob("minilm-tuned-*")

    # The shipped ONNX file is the tuned encoder: it agrees with the tuned torch weights, not the packaged ones.
    shipped = OnnxMiniLMEmbedder(out / ONNX_FILE).embed(TEXTS[:6])
    tuned_cosine = (shipped * torch_vectors(tuned, TEXTS[:6])).sum(1)
    base_cosine = (shipped * torch_vectors(minilm_model_dir(), TEXTS[:6])).sum(1)
    assert tuned_cosine.min() > 0.97 and tuned_cosine.mean() > base_cosine.mean() + 0.01

    said: list[str] = []
    config = TrainConfig(data=[tiny_data], out=out, per_class=10, per_source=800)
    assert tuned_minilm(config, training_sample(config), TuningConfig(epochs=30), cache, said.append) == tuned
    assert said == [f"fine-tuned MiniLM found in {tuned}"]



def test_tuning_is_refused_for_embedders_it_does_not_apply_to(tiny_data: Path, tmp_path: Path) -> None:
    assert main(["router", "train", "--data", str(tiny_data), "--out", str(tmp_path / "a"), "--embedder", "hashing",
                 "--tune-epochs", "1", "--quiet"]) == 2
    assert not (tmp_path / "a").exists()
