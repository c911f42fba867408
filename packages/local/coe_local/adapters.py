"""Local LoRA adapters: shipped as checksummed artifacts in the package, copied into the cache and verified."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from coe_local.manifest import MANIFEST_NAME, read_manifest, staged_folder, verify_folder
from coe_local.models import ModelPrepareError, Say, catalogue_entry

# Trained by `make adapters` (coe_local.adapter_training) from ../shared/datasets/experts/train; never at run time.
SHIPPED_ADAPTERS = Path(__file__).resolve().parent / "artifacts" / "adapters"


@dataclass(frozen=True)
class AdapterRecipe:
    """A LoRA adapter: which base it sits on and which category's training data teaches it."""

    adapter_id: str
    base_model: str
    domain: str


# `general` is the base model itself; every other category has its own adapter.
ADAPTER_DOMAINS = ("code", "math", "medical", "legal", "finance", "science")

ADAPTERS: dict[str, AdapterRecipe] = {
    f"smollm2-135m-{domain}": AdapterRecipe(f"smollm2-135m-{domain}", "smollm2-135m-instruct", domain)
    for domain in ADAPTER_DOMAINS
}


def adapter_dir(cache_dir: Path, adapter_id: str) -> Path:
    """Where an installed adapter lives."""
    return cache_dir / "adapters" / adapter_id


def adapter_recipe(adapter_id: str) -> AdapterRecipe:
    """The catalogue entry for `adapter_id`, with the known ids in the error."""
    return catalogue_entry(ADAPTERS, adapter_id, "adapter")


def shipped_source(adapter_id: str, shipped: Path = SHIPPED_ADAPTERS) -> dict[str, object]:
    """The shipped artifact's manifest source, after checking its files against their checksums."""
    folder = shipped / adapter_id
    manifest = read_manifest(folder)
    if manifest is None:
        raise ModelPrepareError(f"adapter {adapter_id}: no shipped artifact at {folder}; rebuild with `make adapters`")
    source: dict[str, object] = manifest["source"]
    problems = verify_folder(folder, source)
    if problems:
        raise ModelPrepareError(f"adapter {adapter_id}: shipped artifact is damaged: {problems[0]}")
    return source


def prepare_adapter(cache_dir: Path, adapter_id: str, say: Say, shipped: Path = SHIPPED_ADAPTERS) -> Path:
    """The adapter's folder in the cache: copied from the shipped artifact unless a verified copy is there."""
    adapter_recipe(adapter_id)
    target = adapter_dir(cache_dir, adapter_id)
    source = shipped_source(adapter_id, shipped)
    problems = verify_folder(target, source)
    if not problems:
        say(f"adapter {adapter_id}: ready (checksums verified)")
        return target
    if target.exists():
        say(f"adapter {adapter_id}: copying again ({problems[0]})")
    with staged_folder(target) as staging:
        for path in sorted((shipped / adapter_id).iterdir()):
            if path.is_file():
                shutil.copy2(path, staging / path.name)
        if verify_folder(staging, source):
            raise ModelPrepareError(f"adapter {adapter_id}: copy does not match {MANIFEST_NAME}")
    say(f"adapter {adapter_id}: installed from the shipped artifact (checksums verified)")
    return target
