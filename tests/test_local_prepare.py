"""`coe models prepare` on the real PyPI package: conversion, shipped adapters copied and verified, the cache lock,
stale staging folders, and the adapters' rebuild path on a tiny configuration."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coe_local.adapter_training import TrainingConfig, build_adapter
from coe_local.adapters import ADAPTERS, SHIPPED_ADAPTERS, adapter_dir, prepare_adapter, shipped_source
from coe_local.manifest import MANIFEST_NAME, verify_folder
from coe_local.models import BASE_MODELS, ModelPrepareError, default_cache_dir, model_dir
from coe_local.prepare import cache_lock, clean_stale_staging, prepare_models
from coe_local.ticking import ticking

BASE = "smollm2-135m-instruct"
ADAPTER = "smollm2-135m-code"
TRAIN_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "experts" / "train"


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COE_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("COE_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "coe"


def test_unknown_ids_name_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelPrepareError, match=f"unknown local model 'nope'; known: {BASE}"):
        prepare_models(tmp_path, ["nope"], [])
    with pytest.raises(ModelPrepareError, match="unknown local adapter 'nope'; known: smollm2-135m-code, "):
        prepare_models(tmp_path, [], ["nope"])


def test_every_category_but_general_has_a_shipped_verified_adapter() -> None:
    assert {recipe.base_model for recipe in ADAPTERS.values()} <= set(BASE_MODELS)
    assert {r.domain for r in ADAPTERS.values()} == {"code", "math", "medical", "legal", "finance", "science"}
    for adapter_id in ADAPTERS:
        source = shipped_source(adapter_id)
        assert source["training"]["rank"] == 8 and source["training"]["seed"] == 0  # type: ignore[index]
        assert source["licences"] and source["data"]["sha256"]  # type: ignore[index]
        size = sum(p.stat().st_size for p in (SHIPPED_ADAPTERS / adapter_id).iterdir())
        assert size < 8 << 20
        config = json.loads((SHIPPED_ADAPTERS / adapter_id / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == BASE and config["r"] == 8


def test_installing_an_adapter_copies_verifies_and_recopies_damage(tmp_path: Path) -> None:
    said: list[str] = []
    target = prepare_adapter(tmp_path, ADAPTER, said.append)
    assert target == adapter_dir(tmp_path, ADAPTER)
    assert said == [f"adapter {ADAPTER}: installed from the shipped artifact (checksums verified)"]
    assert verify_folder(target, shipped_source(ADAPTER)) == []
    said.clear()
    prepare_adapter(tmp_path, ADAPTER, said.append)
    assert said == [f"adapter {ADAPTER}: ready (checksums verified)"]
    with (target / "adapter_config.json").open("a") as handle:
        handle.write(" ")
    said.clear()
    prepare_adapter(tmp_path, ADAPTER, said.append)
    assert "copying again (adapter_config.json: checksum differs)" in said[0]


def test_a_damaged_shipped_artifact_is_refused(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    (shipped / ADAPTER).mkdir(parents=True)
    for path in (SHIPPED_ADAPTERS / ADAPTER).iterdir():
        (shipped / ADAPTER / path.name).write_bytes(path.read_bytes())
    (shipped / ADAPTER / "adapter_model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelPrepareError, match=r"shipped artifact is damaged: adapter_model\.safetensors"):
        prepare_adapter(tmp_path / "cache", ADAPTER, lambda _: None, shipped=shipped)


def test_stale_staging_folders_are_removed_on_the_next_run(tmp_path: Path) -> None:
    stale = tmp_path / "adapters" / f".{ADAPTER}.staging-999999"
    stale.mkdir(parents=True)
    (stale / "half-written").write_text("x")
    said: list[str] = []
    with cache_lock(tmp_path, said.append):
        assert clean_stale_staging(tmp_path, said.append) == [stale]
    assert not stale.exists() and "left by an interrupted prepare" in said[0]


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from coe_local.prepare import cache_lock
with cache_lock(Path(sys.argv[1]), print):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_long_step_says_it_is_still_at_work_until_it_ends() -> None:
    said: list[str] = []
    with ticking(said.append, "reading", every_s=0.05):
        time.sleep(0.3)
    assert len(said) >= 3 and all(line.startswith("reading: still at it (") for line in said)
    count = len(said)
    time.sleep(0.2)
    assert len(said) == count  # quiet once the step is over


def test_a_second_prepare_waits_for_the_first(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(tmp_path), "2"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    said: list[str] = []
    started = time.monotonic()
    prepare_models(tmp_path, [], [], say=said.append)
    assert time.monotonic() - started > 1.0
    assert said[0].startswith("waiting for another `coe models prepare`")
    holder.communicate(timeout=10)
    assert holder.returncode == 0


PREPARE = """
import sys
from pathlib import Path
from coe_local.prepare import prepare_models
import time
started = time.monotonic()
prepare_models(Path(sys.argv[1]), None, None, say=lambda m: print(f"{time.monotonic() - started:.1f} {m}", flush=True))
"""
# The first-run promise: no step of a prepare is silent for longer than this.
MAX_SILENCE_S = 15.0


def silences(output: str) -> list[float]:
    """The gaps between a prepare's progress lines (each starts with its time in seconds)."""
    times = [0.0, *(float(line.split(" ", 1)[0]) for line in output.splitlines() if line[:1].isdigit())]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


@pytest.mark.slow
def test_two_prepares_at_once_leave_a_verified_cache(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    runs = [
        subprocess.Popen([sys.executable, "-c", PREPARE, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert sum("prepared in" in out for out in outputs) == 1  # one converted, the other waited and verified
    assert sum("waiting for another" in out for out in outputs) == 1
    for out in outputs:  # the converting one ticks while transformers reads the GGUF; the waiting one while it waits
        assert max(silences(out)) <= MAX_SILENCE_S, out
    base = model_dir(tmp_path, BASE)
    assert verify_folder(base, json.loads((base / MANIFEST_NAME).read_text())["source"]) == []
    for adapter_id in ADAPTERS:
        assert verify_folder(adapter_dir(tmp_path, adapter_id), shipped_source(adapter_id)) == []
    assert not [p for kind in ("models", "adapters") for p in os.listdir(tmp_path / kind) if p.startswith(".")]

    # The rebuild path of the shipped artifacts (`make adapters`), on a tiny configuration.
    if not TRAIN_DATA.is_dir():
        pytest.skip(f"expert training data not found at {TRAIN_DATA}")
    said: list[str] = []
    config = TrainingConfig(steps=2, batch_size=2, max_tokens=96, bf16_autocast=False)  # fp32: fast on any CPU
    built = build_adapter(ADAPTERS[ADAPTER], base, TRAIN_DATA, tmp_path / "shipped", config, said.append)
    manifest = json.loads((built / MANIFEST_NAME).read_text())
    assert {"adapter_config.json", "adapter_model.safetensors"} == set(manifest["files"])
    assert manifest["source"]["training"]["steps"] == 2 and manifest["source"]["figures"]["examples"] == 4
    assert manifest["source"]["training"]["bf16_autocast"] is False
    assert manifest["source"]["licences"]["mbpp"] == "CC BY 4.0"
    assert any("step 2/2" in line for line in said)
    installed = prepare_adapter(tmp_path / "other", ADAPTER, said.append, shipped=tmp_path / "shipped")
    assert verify_folder(installed, manifest["source"]) == []
