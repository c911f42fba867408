"""Offline: MiniLM fine-tuned end to end on the routing labels before it is exported (torch, training time only).

Mean-pooled, normalised sentence vectors under a cosine head, trained with cross-entropy: the vectors stay unit
length, so the kNN and logistic regression fitted on them afterwards work as they do on plain MiniLM.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_model.embedders import minilm_model_dir
from router_model.onnx_export import mean_pooled


@dataclass(frozen=True)
class TuningConfig:
    """One fine-tuning run; the same texts, labels and config give the same weights on the same machine."""

    epochs: float = 1.0
    learning_rate: float = 4e-5
    head_learning_rate: float = 3e-3
    batch_size: int = 32
    max_tokens: int = 128
    logit_scale: float = 16.0
    label_smoothing: float = 0.05
    warmup_steps: int = 30
    threads: int = 2
    seed: int = 0


def tuning_key(texts: Sequence[str], labels: np.ndarray, config: TuningConfig) -> str:
    """A short hash of everything the tuned weights depend on, to find them again in a cache."""
    digest = hashlib.sha256(json.dumps({**asdict(config), "epochs": float(config.epochs)}, sort_keys=True).encode())
    for text, label in zip(texts, labels.tolist(), strict=True):
        digest.update(f"{label}\t{text}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def _length_batches(texts: Sequence[str], size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length texts (less padding), in shuffled order."""
    order = list(range(len(texts)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    window = size * 50
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: len(texts[i]))
        batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches


def fine_tune_minilm(
    texts: Sequence[str],
    labels: np.ndarray,
    n_categories: int,
    out: Path,
    config: TuningConfig = TuningConfig(),
    log: Callable[[str], None] = print,
) -> Path:
    """Fine-tune MiniLM on (text, label) pairs and save it (weights and tokenizer) to `out`."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(config.seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(minilm_model_dir()))
        encoder = AutoModel.from_pretrained(str(minilm_model_dir()))
        head = torch.nn.Parameter(torch.randn(n_categories, encoder.config.hidden_size) * 0.05)
        steps = max(1, math.ceil(len(texts) / config.batch_size * config.epochs))
        optimiser = torch.optim.AdamW(
            [{"params": encoder.parameters(), "lr": config.learning_rate},
             {"params": [head], "lr": config.head_learning_rate}],
            weight_decay=0.01,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda s: min(1.0, (s + 1) / config.warmup_steps) * max(0.0, 1 - s / steps))
        targets = torch.as_tensor(labels, dtype=torch.long)
        rng = random.Random(config.seed)
        encoder.train()
        step = 0
        log(f"fine-tuning MiniLM on {len(texts)} prompts: {steps} steps of {config.batch_size}")
        while step < steps:
            for batch in _length_batches(texts, config.batch_size, rng):
                if step >= steps:
                    break
                vectors = _pooled(encoder, tokenizer, [texts[i] for i in batch], config.max_tokens, torch)
                logits = config.logit_scale * vectors @ torch.nn.functional.normalize(head, dim=1).T
                loss = torch.nn.functional.cross_entropy(
                    logits, targets[batch], label_smoothing=config.label_smoothing)
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
                optimiser.step()
                schedule.step()
                step += 1
                if step % 50 == 0 or step == steps:
                    log(f"  step {step}/{steps}, loss {loss.item():.3f}")
        encoder.eval()
        out.mkdir(parents=True, exist_ok=True)
        encoder.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        (out / "tuning.json").write_text(json.dumps({**asdict(config), "steps": steps, "prompts": len(texts)}))
        return out
    finally:
        torch.set_num_threads(previous_threads)


def _pooled(encoder: Any, tokenizer: Any, batch: list[str], max_tokens: int, torch: Any) -> Any:
    """The batch's sentence vectors, pooled exactly as the exported graph pools them."""
    tokens = tokenizer(batch, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    hidden = encoder(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                     token_type_ids=torch.zeros_like(tokens["input_ids"])).last_hidden_state
    return mean_pooled(hidden, tokens["attention_mask"])


def tuned_minilm(
    train_config: Any, sampled: tuple[Any, ...], config: TuningConfig, work_dir: Path,
    log: Callable[[str], None] = print,
) -> Path:
    """MiniLM fine-tuned on the training sample less its calibration share (so the temperature is fitted on
    prompts the encoder never saw); reused from `work_dir` when the same sample and config were tuned before."""
    from router_model.training import calibration_split

    _, sample, categories, labels = sampled  # as `training.training_sample` returns it
    kept = np.flatnonzero(~calibration_split(len(sample), train_config.calibration_fraction, train_config.seed))
    texts = [sample[i].text for i in kept]
    out = work_dir / f"minilm-tuned-{tuning_key(texts, labels[kept], config)}"
    if (out / "tuning.json").is_file():
        log(f"fine-tuned MiniLM found in {out}")
        return out
    return fine_tune_minilm(texts, labels[kept], len(categories), out, config, log)
