"""`coe up` and `coe models prepare|list`: the local stack of real small models on vLLM engines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coe_local.up import add_up_command


def _prepare(args: argparse.Namespace) -> int:
    from coe_local.models import ModelPrepareError, default_cache_dir
    from coe_local.prepare import prepare_models

    cache_dir = args.cache_dir or default_cache_dir()
    try:
        prepared = prepare_models(cache_dir, args.model, args.adapter)
    except ModelPrepareError as exc:
        print(f"coe models prepare: {exc}", file=sys.stderr)
        return 1
    for model_id, path in {**prepared.models, **prepared.adapters}.items():
        print(f"{model_id}\t{path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from coe_local.adapters import ADAPTERS
    from coe_local.models import BASE_MODELS

    for model_id, model in BASE_MODELS.items():
        print(f"model\t{model_id}\tfrom {model.package}/{model.filename} ({model.license})")
    for adapter_id, recipe in ADAPTERS.items():
        print(f"adapter\t{adapter_id}\tLoRA on {recipe.base_model}, {recipe.domain} examples")
    return 0


def _add_models(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = subparsers.add_parser("models", help="local models made from PyPI packages")
    actions = models.add_subparsers(dest="models_command", required=True)
    prepare = actions.add_parser(
        "prepare", help="convert base models and train adapters into the cache (once)"
    )
    prepare.add_argument("--cache-dir", type=Path, help="default $COE_CACHE_DIR or ~/.cache/coe")
    prepare.add_argument("--model", action="append", help="only this base model id (repeatable)")
    prepare.add_argument(
        "--adapter", action="append", help="only this adapter id (repeatable; brings its base)"
    )
    prepare.set_defaults(handler=_prepare)
    listing = actions.add_parser("list", help="the local model and adapter ids")
    listing.set_defaults(handler=_list)


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the local-stack subcommands."""
    add_up_command(subparsers)
    _add_models(subparsers)
