"""Local LoRA adapters: one per domain, trained briefly on the CPU with `peft` on a prepared base model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coe_local.domain_examples import DOMAIN_EXAMPLES
from coe_local.manifest import read_manifest, staged_folder, verify_folder, write_manifest
from coe_local.models import ModelPrepareError, Say, model_dir

# Bump when the training changes, so adapters made by an older recipe are trained again.
TRAINING_RECIPE = "lora-r8-qkvo/full-batch-bf16-steps8-lr5e-3-seed0/4"
LORA_RANK = 8
TRAIN_STEPS = 8
LEARNING_RATE = 5e-3
SEED = 0


@dataclass(frozen=True)
class AdapterRecipe:
    """A LoRA adapter: which base it sits on and which project-written examples teach it."""

    adapter_id: str
    base_model: str
    domain: str


# Each adapter costs about a minute of CPU training on an idle 2-core machine (several when it is shared),
# so the catalogue trains three; the legal and finance examples are there for machines with time to spare.
ADAPTER_DOMAINS = ("code", "math", "medical")

ADAPTERS: dict[str, AdapterRecipe] = {
    f"smollm2-135m-{domain}": AdapterRecipe(f"smollm2-135m-{domain}", "smollm2-135m-instruct", domain)
    for domain in ADAPTER_DOMAINS
}


def adapter_dir(cache_dir: Path, adapter_id: str) -> Path:
    """Where a trained adapter lives."""
    return cache_dir / "adapters" / adapter_id


def adapter_recipe(adapter_id: str) -> AdapterRecipe:
    """The catalogue entry for `adapter_id`, with the known ids in the error."""
    try:
        return ADAPTERS[adapter_id]
    except KeyError:
        raise ModelPrepareError(
            f"unknown local adapter {adapter_id!r}; known: {', '.join(ADAPTERS)}"
        ) from None


def _source(recipe: AdapterRecipe, cache_dir: Path) -> dict[str, Any]:
    base_manifest = read_manifest(model_dir(cache_dir, recipe.base_model))
    if base_manifest is None:
        raise ModelPrepareError(
            f"adapter {recipe.adapter_id} needs base model {recipe.base_model} prepared first"
        )
    return {
        "recipe": TRAINING_RECIPE,
        "base_model": recipe.base_model,
        "base_weights": {k: v for k, v in base_manifest["files"].items() if k.endswith(".safetensors")},
        "examples": DOMAIN_EXAMPLES[recipe.domain],
    }


def prepare_adapter(cache_dir: Path, adapter_id: str, say: Say) -> Path:
    """The adapter's folder in the cache, trained unless a verified copy from the same recipe is there."""
    recipe = adapter_recipe(adapter_id)
    target = adapter_dir(cache_dir, adapter_id)
    source = _source(recipe, cache_dir)
    problems = verify_folder(target, source)
    if not problems:
        say(f"adapter {adapter_id}: ready (checksums verified)")
        return target
    if target.exists():
        say(f"adapter {adapter_id}: retraining ({problems[0]})")
    started = time.monotonic()
    with staged_folder(target) as staging:
        _train(
            model_dir(cache_dir, recipe.base_model),
            DOMAIN_EXAMPLES[recipe.domain],
            staging,
            say=lambda step: say(f"adapter {adapter_id}: {step}"),
        )
        write_manifest(staging, source)
    say(f"adapter {adapter_id}: trained in {time.monotonic() - started:.0f} s")
    return target


def _encode(tokenizer: Any, question: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of one chat exchange and its labels, with the prompt masked so only the answer is learnt."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], tokenize=False
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    return full_ids, [-100] * len(prompt_ids) + full_ids[len(prompt_ids) :]


def _batch(tokenizer: Any, examples: list[tuple[str, str]]) -> dict[str, Any]:
    """All examples as one right-padded batch; padding is masked out of attention and loss."""
    import torch

    encoded = [_encode(tokenizer, q, a) for q, a in examples]
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def padded(row: list[int], fill: int) -> list[int]:
        return row + [fill] * (width - len(row))

    return {
        "input_ids": torch.tensor([padded(ids, pad) for ids, _ in encoded]),
        "attention_mask": torch.tensor([padded([1] * len(ids), 0) for ids, _ in encoded]),
        "labels": torch.tensor([padded(labels, -100) for _, labels in encoded]),
    }


def _train(base: Path, examples: list[tuple[str, str]], out: Path, say: Say) -> None:
    """A short deterministic LoRA fine-tune (the whole example set per step) saved with `peft`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=LORA_RANK,
        lora_alpha=2 * LORA_RANK,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    peft_model = get_peft_model(model, config)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    batch = _batch(tokenizer, examples)
    peft_model.train()
    for step in range(TRAIN_STEPS):
        # bf16 matmuls (AMX/AVX-512 where present) make a CPU step several times cheaper than fp32.
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = peft_model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if (step + 1) % 4 == 0 or step + 1 == TRAIN_STEPS:
            say(f"step {step + 1}/{TRAIN_STEPS}, loss {loss.item():.3f}")
    peft_model.save_pretrained(str(out))
