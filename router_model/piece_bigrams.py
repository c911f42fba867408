"""Frequent pairs of adjacent word pieces as extra rows of the static stage's table.

A bag of single pieces cannot tell "the trolley problem" from "the coding problem"; a row per frequent pair
("trolley problem") lets the static stage see a little word order, for a row gather more per pair.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import pairwise

import numpy as np


class PieceBigrams:
    """Maps adjacent piece pairs to table rows `first_row + i` for the i-th stored pair; other pairs add nothing."""

    def __init__(self, pairs: np.ndarray, first_row: int) -> None:
        pairs = np.asarray(pairs, dtype=np.int32).reshape(-1, 2)
        self.first_row = first_row
        keys = self._keys(pairs[:, 0], pairs[:, 1])
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]

    @staticmethod
    def _keys(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return (first.astype(np.int64) << 32) | second.astype(np.int64)

    def extended(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The pieces' rows followed by the rows of the stored pairs among them, in text order."""
        index = np.asarray(ids, dtype=np.int64)
        if len(index) < 2 or not len(self._sorted):
            return index
        keys = self._keys(index[:-1], index[1:])
        at = np.searchsorted(self._sorted, keys).clip(max=len(self._sorted) - 1)
        found = self._sorted[at] == keys
        return np.concatenate([index, self.first_row + self._order[at[found]]])


def frequent_pairs(pieces: Sequence[Sequence[int]], count: int) -> np.ndarray:
    """The `count` adjacent pairs found in the most texts (at least two), ties in first-seen order."""
    seen: Counter[tuple[int, int]] = Counter()
    for ids in pieces:
        seen.update(iter(dict.fromkeys(pairwise(ids))))  # once per text
    kept = [pair for pair, texts in seen.most_common(count) if texts >= 2]
    return np.asarray(kept, dtype=np.int32).reshape(-1, 2)
