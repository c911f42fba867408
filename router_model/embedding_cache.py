"""Embeddings kept on disk between training runs, keyed by embedder spec and text."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from router_model.embedders import Embedder


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def embed_with_cache(
    embedder: Embedder, texts: Sequence[str], cache_dir: Path | None, progress: bool = False
) -> np.ndarray:
    """Embed texts, reusing and extending the cache file for this embedder when a cache folder is given."""
    if cache_dir is None:
        return embedder.embed(texts, progress=progress)
    spec_key = hashlib.sha256(json.dumps(embedder.spec(), sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"embeddings-{spec_key}.npz"
    known: dict[str, np.ndarray] = {}
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            known = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
    keys = [_text_key(text) for text in texts]
    missing = sorted({key: text for key, text in zip(keys, texts, strict=True) if key not in known}.items())
    if missing:
        vectors = embedder.embed([text for _, text in missing], progress=progress)
        known.update(
            {key: vector.astype(np.float32) for (key, _), vector in zip(missing, vectors, strict=True)}
        )
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(path, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    return np.stack([known[key] for key in keys]).astype(np.float32)
