"""A trained router on disk: `meta.json` (what it is, how it was made, how well it does) plus `model.npz`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_model.classifiers import ScoringModel, model_from_arrays

META_FILE = "meta.json"
MODEL_FILE = "model.npz"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RouterArtifact:
    """The parts of a trained router that serving needs, and its full metadata."""

    categories: tuple[str, ...]
    embedder_spec: dict[str, Any]
    model: ScoringModel
    temperature: float
    meta: dict[str, Any]


def save_artifact(directory: Path, model: ScoringModel, meta: dict[str, Any]) -> None:
    """Write the model arrays and the metadata (which must already name categories, embedder, temperature)."""
    directory.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(directory / MODEL_FILE, **model.arrays())  # type: ignore[arg-type]
    full_meta = {
        "format": FORMAT_VERSION,
        **meta,
        "classifier": {**meta.get("classifier", {}), "kind": model.kind},
    }
    (directory / META_FILE).write_text(json.dumps(full_meta, indent=2, ensure_ascii=False) + "\n")


def read_meta(directory: Path) -> dict[str, Any]:
    """The metadata of an artifact, with a clear error when the folder is not one."""
    path = directory / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a router artifact (no {META_FILE})")
    meta: dict[str, Any] = json.loads(path.read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported artifact format {meta.get('format')!r}")
    return meta


def load_artifact(directory: Path) -> RouterArtifact:
    """Read an artifact written by `save_artifact` (no pickle: arrays only)."""
    meta = read_meta(directory)
    with np.load(directory / MODEL_FILE, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    model = model_from_arrays(meta["classifier"]["kind"], arrays)
    return RouterArtifact(
        tuple(meta["categories"]), meta["embedder"], model, float(meta["temperature"]), meta
    )


def default_artifact_dir() -> Path:
    """The artifact that ships inside the package."""
    return Path(__file__).resolve().parent / "artifacts" / "default"


def record_scores(directory: Path, name: str, scores: dict[str, Any]) -> None:
    """Store evaluation scores under `scores[name]` in an artifact's meta.json."""
    meta = read_meta(directory)
    meta.setdefault("scores", {})[name] = scores
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
