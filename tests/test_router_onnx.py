"""The transformer stage from int8 ONNX: close to MiniLM in torch, checksummed, and served without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from router_model.artifact import default_artifact_dir
from router_model.embedders import MiniLMEmbedder, make_embedder
from router_model.onnx_embedder import ONNX_FILE, OnnxMiniLMEmbedder
from router_model.onnx_export import export_minilm_int8

TEXTS = [
    "why does my python script throw a KeyError when reading the config",
    "what is the derivative of x^3 sin x",
    "¿Cuáles son los síntomas de la diabetes tipo 2?",
    "my landlord kept the deposit, can I sue in small claims court",
    "x" * 3000,
    "🙂🙂🙂",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_minilm_int8(tmp_path_factory.mktemp("onnx") / ONNX_FILE)


def test_int8_onnx_embeddings_stay_close_to_torch_fp32(exported: Path) -> None:
    onnx_rows = OnnxMiniLMEmbedder(exported).embed(TEXTS)
    torch_rows = MiniLMEmbedder().embed(TEXTS)
    assert onnx_rows.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(onnx_rows, axis=1), 1.0, atol=1e-4)
    cosines = (onnx_rows * torch_rows).sum(axis=1)
    assert cosines.min() > 0.97, cosines


def test_the_spec_rebuilds_the_embedder_and_checks_its_file(exported: Path, tmp_path: Path) -> None:
    embedder = OnnxMiniLMEmbedder(exported)
    spec = embedder.spec()
    assert spec["kind"] == "minilm-onnx" and spec["file"] == ONNX_FILE and len(spec["sha256"]) == 64
    rebuilt = make_embedder(spec, base_dir=exported.parent)
    assert np.array_equal(rebuilt.embed(TEXTS[:2]), embedder.embed(TEXTS[:2]))
    tampered = tmp_path / ONNX_FILE
    tampered.write_bytes(exported.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="checksum"):
        make_embedder(spec, base_dir=tmp_path).embed(["x"])


def test_the_shipped_router_routes_without_importing_torch() -> None:
    meta = json.loads((default_artifact_dir() / "meta.json").read_text())
    if meta["embedder"]["kind"] != "minilm-onnx":
        pytest.skip("the shipped router's second stage is not the ONNX one")
    script = (
        "import sys\n"
        "from router_model.cascade import load_router\n"
        "from router_model.artifact import default_artifact_dir\n"
        "router = load_router(default_artifact_dir())\n"
        "router.warm()\n"
        "print(router.route('x' * 2000).category, router.route('hi').category)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.splitlines()[-1] == "[]", done.stdout
