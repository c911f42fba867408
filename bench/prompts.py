"""Queries for the benchmarks, taken from the project's own labelled prompts (`router_model/data`)."""

from __future__ import annotations

import json
from itertools import zip_longest

from bench.stack import ROUTER_DATA

LONG_CHARS = 2000  # the gateway classifies at most this much of a turn


def project_prompts() -> list[str]:
    """Every prompt of the project's own data set, in a stable order, categories interleaved."""
    per_file = []
    for path in sorted(ROUTER_DATA.glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        per_file.append([json.loads(line)["prompt"] for line in lines if line.strip()])
    return [p for group in zip_longest(*per_file) for p in group if p is not None]


def short_prompts(limit: int = 64) -> list[str]:
    """Short user questions, as most chat traffic is."""
    return project_prompts()[:limit]


def long_prompts(count: int = 16) -> list[str]:
    """Long pasted text: prompts joined until the classifier's character cap is reached."""
    prompts = project_prompts()
    longs = []
    for start in range(count):
        text, index = "", start * 7
        while len(text) < LONG_CHARS:
            text += prompts[index % len(prompts)] + ". "
            index += 1
        longs.append(text[:LONG_CHARS])
    return longs
