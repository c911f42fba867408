"""A static embedding: a weighted mean of per-word-piece vectors, fine-tuned offline on the routing labels.

No transformer runs at serving time: one tokenizer call, a row gather and a dot product (tens of microseconds).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router_model.piece_bigrams import PieceBigrams
from router_model.tokenising import WordPieces

TABLE_FILE = "static.npz"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class StaticEmbedder:
    """Rows of a word-piece table averaged with learned per-piece weights, then L2-normalised; a table saved
    with `bigrams` (pairs of pieces) also averages the rows of the frequent pairs the text contains."""

    def __init__(self, table_path: Path, max_tokens: int = 256, sha256: str | None = None) -> None:
        self._table_path = table_path
        self._max_tokens = max_tokens
        self._sha256 = sha256
        self._pieces = WordPieces(max_tokens)
        self._table: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._bigrams: PieceBigrams | None = None
        with np.load(table_path, allow_pickle=False) as stored:
            self.dimension = int(stored["table"].shape[1])

    def spec(self) -> dict[str, Any]:
        """See `Embedder.spec`."""
        return {
            "kind": "static",
            "name": "MiniLM word pieces, distilled and fine-tuned on the routing labels",
            "file": self._table_path.name,
            "sha256": self._sha256 or file_sha256(self._table_path),
            "dimension": self.dimension,
            "max_tokens": self._max_tokens,
        }

    def _loaded(self) -> tuple[np.ndarray, np.ndarray]:
        if self._table is None or self._weights is None:
            if self._sha256 and file_sha256(self._table_path) != self._sha256:
                raise ValueError(f"{self._table_path}: checksum differs from the artifact's meta.json")
            with np.load(self._table_path, allow_pickle=False) as stored:
                # float16 keeps the table at half the memory; gathered rows are widened per query.
                table = stored["table"].astype(np.float16)
                if "bigrams" in stored.files:  # set before the table: a thread that sees the table sees them
                    self._bigrams = PieceBigrams(stored["bigrams"], len(table) - len(stored["bigrams"]))
                self._weights = stored["weights"].astype(np.float32)
                self._table = table
        return self._table, self._weights

    def _pool(self, ids: Sequence[int]) -> np.ndarray:
        table, weights = self._loaded()
        index = np.asarray(ids, dtype=np.int64) if self._bigrams is None else self._bigrams.extended(ids)
        piece_weights = weights[index]
        vector = piece_weights @ table[index].astype(np.float32)
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        return vector.astype(np.float32)

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """See `Embedder.embed`."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._pool(ids) for ids in self._pieces.pieces_batch(list(texts))])

    def embed_one_timed(self, text: str) -> tuple[np.ndarray, dict[str, float]]:
        """See `Embedder.embed_one_timed`."""
        started = time.perf_counter()
        ids = self._pieces.pieces(text)
        tokenised = time.perf_counter()
        vector = self._pool(ids)
        return vector, {"tokenise": tokenised - started, "embed": time.perf_counter() - tokenised}
