"""Each shipped adapter against the base model on its own category's held-out eval items (reference likelihood).

The same measure as `coe experts eval` (mean log-prob of the reference's tokens after the chat-templated
prompt), computed in-process with transformers and peft: a check for `make adapters`, never run by the stack.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from coe_local.adapter_training import encode
from coe_local.adapters import ADAPTERS, SHIPPED_ADAPTERS
from coe_local.models import default_cache_dir, model_dir

DEFAULT_EVAL = Path("../shared/datasets/experts/eval")


def mean_logprob(model: Any, tokenizer: Any, prompt: str, reference: str, max_tokens: int = 1024) -> float:
    """Mean log-prob of the reference tokens (the answer part of one chat exchange)."""
    import torch

    ids, labels = encode(tokenizer, prompt, reference)
    ids, labels = ids[-max_tokens:], labels[-max_tokens:]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
    targets = torch.tensor(labels[1:])
    mask = targets != -100
    logprobs = torch.log_softmax(logits[mask], dim=-1).gather(1, targets[mask][:, None])[:, 0]
    return float(logprobs.mean())


def main(argv: list[str] | None = None) -> int:
    """`python -m coe_local.adapter_check --limit N`: one JSON line per adapter, base vs adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parser = argparse.ArgumentParser(prog="python -m coe_local.adapter_check", description=__doc__)
    parser.add_argument("--eval", type=Path, default=DEFAULT_EVAL)
    parser.add_argument("--limit", type=int, default=8, help="items per category (seeded, first of each file)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    base_dir = model_dir(default_cache_dir(), "smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    for adapter_id, recipe in ADAPTERS.items():
        lines = (args.eval / f"{recipe.domain}.jsonl").read_text(encoding="utf-8").split("\n")
        records = [json.loads(line) for line in lines if line.strip()]
        step = max(1, len(records) // args.limit)
        items = records[::step][: args.limit]  # spread over the file, which is grouped by source
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
        base_scores = [mean_logprob(base, tokenizer, r["prompt"], r["reference"]) for r in items]
        tuned = PeftModel.from_pretrained(base, str(SHIPPED_ADAPTERS / adapter_id)).eval()
        tuned_scores = [mean_logprob(tuned, tokenizer, r["prompt"], r["reference"]) for r in items]
        n = len(items)
        print(json.dumps({
            "adapter": adapter_id, "category": recipe.domain, "n": n,
            "base": round(sum(base_scores) / n, 4), "adapter_score": round(sum(tuned_scores) / n, 4),
            "items_better": sum(t > b for t, b in zip(tuned_scores, base_scores, strict=True)),
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
