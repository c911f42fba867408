"""Rebuild the shipped LoRA adapters from the expert training data (`make adapters`); the stack never calls it."""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from coe_local.adapters import ADAPTERS, SHIPPED_ADAPTERS, AdapterRecipe
from coe_local.manifest import write_manifest
from coe_local.models import Say, default_cache_dir, prepare_base_model

DEFAULT_DATA = Path("../shared/datasets/experts/train")


@dataclass(frozen=True)
class TrainingConfig:
    """How one adapter is trained; stored in its manifest so a rebuild is reproducible."""

    rank: int = 8
    steps: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-3
    max_tokens: int = 320
    seed: int = 0
    threads: int = 2
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    # bf16 autocast is several times cheaper where the CPU has bf16 units (AMX, AVX512-BF16) and about 20x dearer
    # where it has not (AVX2 only: one step of 2 x 96 tokens, 44 s against 2 s in fp32).
    bf16_autocast: bool = True


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of one training file, failing with the path when it is absent."""
    if not path.is_file():
        raise SystemExit(f"training data {path} not found (expected ../shared/datasets/experts/train)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def encode(tokenizer: Any, prompt: str, reference: str) -> tuple[list[int], list[int]]:
    """Token ids of one chat exchange and its labels, the prompt masked so only the answer is learnt."""
    user = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*user, {"role": "assistant", "content": reference}], tokenize=False)
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    return full_ids, [-100] * len(head_ids) + full_ids[len(head_ids) :]


def pick_examples(
    tokenizer: Any, records: list[dict[str, Any]], count: int, config: TrainingConfig
) -> list[tuple[list[int], list[int]]]:
    """`count` seeded examples that fit `max_tokens` (longer ones are skipped rather than cut)."""
    order = list(range(len(records)))
    random.Random(config.seed).shuffle(order)
    picked = []
    for index in order:
        ids, labels = encode(tokenizer, records[index]["prompt"], records[index]["reference"])
        if len(ids) <= config.max_tokens:
            picked.append((ids, labels))
        if len(picked) == count:
            break
    return picked


def to_batch(rows: list[tuple[list[int], list[int]]], pad: int) -> dict[str, Any]:
    """Right-padded tensors; padding is masked out of attention and loss."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    return {
        "input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows]),
        "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows]),
        "labels": torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in rows]),
    }


def train_adapter(
    base: Path, records: list[dict[str, Any]], out: Path, config: TrainingConfig, say: Say
) -> dict[str, Any]:
    """A seeded LoRA fine-tune on prompt -> reference pairs, saved in bf16 with `peft`; returns its figures."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=2 * config.rank,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
        target_modules=list(config.target_modules),
    )
    peft_model = get_peft_model(model, lora)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=config.learning_rate)
    examples = pick_examples(tokenizer, records, config.steps * config.batch_size, config)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    started = time.monotonic()
    last_said = started
    losses: list[float] = []
    peft_model.train()
    for step in range(config.steps):
        rows = examples[step * config.batch_size : (step + 1) * config.batch_size] or examples[: config.batch_size]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16_autocast):
            loss = peft_model(**to_batch(rows, pad)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.item()))
        now = time.monotonic()
        if now - last_said > 10 or step + 1 == config.steps:
            say(f"step {step + 1}/{config.steps}, loss {losses[-1]:.3f}, {now - started:.0f} s")
            last_said = now
    peft_model = peft_model.to(torch.bfloat16)
    peft_model.save_pretrained(str(out))
    _portable(out, base.name)
    return {
        "train_seconds": round(time.monotonic() - started, 1),
        "examples": len(examples),
        "first_loss": round(losses[0], 4),
        "last_loss": round(sum(losses[-5:]) / len(losses[-5:]), 4),
    }


def _portable(out: Path, base_id: str) -> None:
    """Drop peft's generated model card and this machine's base path, so the artifact is the same anywhere."""
    (out / "README.md").unlink(missing_ok=True)
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_id
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build_adapter(
    recipe: AdapterRecipe, base: Path, data_dir: Path, out_root: Path, config: TrainingConfig, say: Say
) -> Path:
    """Train one adapter into `out_root/<id>` with a manifest of its data, licences, seed and checksums."""
    data_path = data_dir / f"{recipe.domain}.jsonl"
    raw = data_path.read_bytes() if data_path.is_file() else b""
    records = read_records(data_path)
    target = out_root / recipe.adapter_id
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        old.unlink()
    figures = train_adapter(base, records, target, config, say=lambda m: say(f"adapter {recipe.adapter_id}: {m}"))
    licences: dict[str, str] = {}
    for record in records:
        licences.setdefault(record["source"], record.get("licence", "unknown"))
    write_manifest(
        target,
        {
            "adapter": recipe.adapter_id,
            "base_model": recipe.base_model,
            "domain": recipe.domain,
            "data": {"file": f"train/{recipe.domain}.jsonl", "sha256": sha256_bytes(raw), "records": len(records)},
            "licences": dict(sorted(licences.items())),
            "training": {**asdict(config), "target_modules": list(config.target_modules)},
            "figures": figures,
        },
    )
    say(f"adapter {recipe.adapter_id}: trained in {figures['train_seconds']:.0f} s, loss {figures['first_loss']}"
        f" -> {figures['last_loss']}")
    return target


def main(argv: list[str] | None = None) -> int:
    """`python -m coe_local.adapter_training`: rebuild the shipped adapters (all, or `--only` some)."""
    parser = argparse.ArgumentParser(prog="python -m coe_local.adapter_training", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of <category>.jsonl")
    parser.add_argument("--out", type=Path, default=SHIPPED_ADAPTERS)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--only", action="append", help="adapter id (repeatable)")
    parser.add_argument("--steps", type=int, default=TrainingConfig.steps)
    parser.add_argument("--batch-size", type=int, default=TrainingConfig.batch_size)
    parser.add_argument("--max-tokens", type=int, default=TrainingConfig.max_tokens)
    parser.add_argument("--fp32", action="store_true",
                        help="no bf16 autocast: much faster on CPUs without bf16 units (AVX2 only); other bytes")
    args = parser.parse_args(argv)
    config = TrainingConfig(steps=args.steps, batch_size=args.batch_size, max_tokens=args.max_tokens,
                            bf16_autocast=not args.fp32)

    def say(message: str) -> None:
        print(f"coe: {message}", file=sys.stderr, flush=True)

    for adapter_id in args.only or list(ADAPTERS):
        recipe = ADAPTERS[adapter_id]
        base = prepare_base_model(args.cache_dir or default_cache_dir(), recipe.base_model, say)
        build_adapter(recipe, base, args.data, args.out, config, say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
