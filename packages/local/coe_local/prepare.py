"""`coe models prepare`: every local base model and adapter a profile needs, made once and verified after."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from coe_local.adapters import ADAPTERS, adapter_recipe, prepare_adapter
from coe_local.models import BASE_MODELS, Say, prepare_base_model


def say_to_stderr(message: str) -> None:
    """Progress lines go to stderr so stdout stays for results."""
    print(f"coe: {message}", file=sys.stderr, flush=True)


@dataclass
class PreparedModels:
    """Folders of the prepared base models and adapters, by id."""

    models: dict[str, Path] = field(default_factory=dict)
    adapters: dict[str, Path] = field(default_factory=dict)


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
    for model_id in wanted_models:
        prepared.models[model_id] = prepare_base_model(cache_dir, model_id, say)
    for adapter_id in wanted_adapters:
        prepared.adapters[adapter_id] = prepare_adapter(cache_dir, adapter_id, say)
    return prepared
