"""`coe models prepare`: every local base model and adapter a profile needs, made once and verified after."""

from __future__ import annotations

import fcntl
import shutil
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from coe_local.adapters import ADAPTERS, adapter_recipe, prepare_adapter
from coe_local.models import BASE_MODELS, Say, prepare_base_model
from coe_local.ticking import ticking


def say_to_stderr(message: str) -> None:
    """Progress lines go to stderr so stdout stays for results."""
    print(f"coe: {message}", file=sys.stderr, flush=True)


@dataclass
class PreparedModels:
    """Folders of the prepared base models and adapters, by id."""

    models: dict[str, Path] = field(default_factory=dict)
    adapters: dict[str, Path] = field(default_factory=dict)


@contextmanager
def cache_lock(cache_dir: Path, say: Say) -> Iterator[None]:
    """One prepare at a time per cache (an OS lock, released even when the holder is killed)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".prepare.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another `coe models prepare` on {cache_dir}")
            with ticking(say, "waiting for the other prepare"):
                fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clean_stale_staging(cache_dir: Path, say: Say) -> list[Path]:
    """Remove staging folders an interrupted prepare left (safe: the caller holds the cache lock)."""
    stale = sorted(p for kind in ("models", "adapters") for p in (cache_dir / kind).glob(".*.staging-*"))
    for path in stale:
        say(f"removing {path.name}, left by an interrupted prepare")
        shutil.rmtree(path, ignore_errors=True)
    return stale


def prepare_models(
    cache_dir: Path,
    model_ids: Iterable[str] | None = None,
    adapter_ids: Iterable[str] | None = None,
    say: Say = say_to_stderr,
) -> PreparedModels:
    """Prepare the given ids (all known ones when both are None); an adapter brings its base model along."""
    if model_ids is None and adapter_ids is None:
        model_ids, adapter_ids = list(BASE_MODELS), list(ADAPTERS)
    wanted_adapters = list(dict.fromkeys(adapter_ids or []))
    wanted_models = list(
        dict.fromkeys([*(model_ids or []), *(adapter_recipe(a).base_model for a in wanted_adapters)])
    )
    prepared = PreparedModels()
    with cache_lock(cache_dir, say):
        clean_stale_staging(cache_dir, say)
        for model_id in wanted_models:
            prepared.models[model_id] = prepare_base_model(cache_dir, model_id, say)
        for adapter_id in wanted_adapters:
            prepared.adapters[adapter_id] = prepare_adapter(cache_dir, adapter_id, say)
    return prepared
