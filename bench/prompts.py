"""Queries for the benchmarks, taken from the project's own labelled prompts (`router_model/data`)."""

from __future__ import annotations

import json
from itertools import zip_longest

from bench.stack import ROUTER_DATA

LONG_CHARS = 2000  # the gateway classifies at most this much of a turn
SHORT_CHARS = 300  # longer prompts of the data set (help posts, pasted code) are not "short questions"
POST_MIN_CHARS = 1500


def project_prompts() -> list[str]:
    """Every prompt of the project's own data set, in a stable order, categories interleaved."""
    per_file = []
    for path in sorted(ROUTER_DATA.glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        per_file.append([json.loads(line)["prompt"] for line in lines if line.strip()])
    return [p for group in zip_longest(*per_file) for p in group if p is not None]


def short_prompts(limit: int = 64) -> list[str]:
    """Short user questions, as most chat traffic is."""
    return [p for p in project_prompts() if len(p) <= SHORT_CHARS][:limit]


def post_prompts(count: int = 16) -> list[str]:
    """Long prompts written as one text (help posts, pasted code and logs), cut to the classifier's cap."""
    posts = [p[:LONG_CHARS] for p in project_prompts() if len(p) >= POST_MIN_CHARS]
    return posts[:count]


def long_prompts(count: int = 16) -> list[str]:
    """A worst case: unrelated short questions joined until the classifier's character cap is reached."""
    prompts = short_prompts(limit=10**9)
    longs = []
    for start in range(count):
        text, index = "", start * 7
        while len(text) < LONG_CHARS:
            text += prompts[index % len(prompts)] + ". "
            index += 1
        longs.append(text[:LONG_CHARS])
    return longs
