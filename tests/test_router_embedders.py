"""Embedder specs round-trip through `make_embedder` without loading any model."""

from __future__ import annotations

import numpy as np
import pytest

from router_model.embedders import HashingEmbedder, make_embedder


def test_minilm_spec_records_int8_only_when_set() -> None:
    assert "int8" not in make_embedder({"kind": "minilm"}).spec()
    assert make_embedder({"kind": "minilm", "int8": True}).spec()["int8"] is True
    assert make_embedder({"kind": "minilm", "max_tokens": 128}).spec()["max_tokens"] == 128


def test_hashing_embedder_rows_are_normalised_and_stable() -> None:
    embedder = make_embedder(HashingEmbedder(256).spec())
    vectors = embedder.embed(["how do i reverse a list", "can my landlord keep my deposit"])
    assert vectors.shape == (2, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    single, timings = embedder.embed_one_timed("how do i reverse a list")
    np.testing.assert_allclose(single, vectors[0], rtol=1e-6)
    assert set(timings) == {"tokenise", "embed"}


def test_unknown_embedder_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown embedder kind"):
        make_embedder({"kind": "word2vec"})
