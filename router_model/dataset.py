"""Labelled prompts read from JSONL files, and the class-balanced sample that training uses."""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabelledPrompt:
    """One training or evaluation example."""

    text: str
    label: str
    source: str


@dataclass(frozen=True)
class SourceFile:
    """One JSONL file read for training, with what the artifact's metadata records about it."""

    path: Path
    sha256: str
    prompts: tuple[LabelledPrompt, ...]


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given, directories replaced by the `*.jsonl` files inside them (sorted, not recursive)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.jsonl")))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such data file or directory: {path}")
    return files


def read_jsonl(path: Path, prompt_field: str = "prompt", label_field: str = "domain") -> SourceFile:
    """Read one JSONL file; records without the prompt or the label are skipped."""
    raw = path.read_bytes()
    prompts: list[LabelledPrompt] = []
    # Split on newlines only: str.splitlines would also break records at U+2028 inside prompts.
    for line_number, line in enumerate(raw.decode("utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{line_number}: not JSON ({error.msg})") from error
        text, label = record.get(prompt_field), record.get(label_field)
        if not isinstance(text, str) or not text.strip() or not isinstance(label, str):
            continue
        # Files without a `source` field are named after the file, as the router data sets are.
        prompts.append(LabelledPrompt(text, label, str(record.get("source") or path.stem)))
    return SourceFile(path, hashlib.sha256(raw).hexdigest(), tuple(prompts))


def balanced_sample(
    prompts: Sequence[LabelledPrompt], per_class: int, per_source: int, seed: int
) -> list[LabelledPrompt]:
    """At most `per_class` prompts per label, drawn evenly across sources (each capped at `per_source`)."""
    by_label: dict[str, dict[str, list[LabelledPrompt]]] = defaultdict(lambda: defaultdict(list))
    for prompt in prompts:
        by_label[prompt.label][prompt.source].append(prompt)
    chosen: list[LabelledPrompt] = []
    for label in sorted(by_label):
        # One generator per (label, source): adding or dropping a source leaves the others' draws unchanged.
        pools = [
            random.Random(f"{seed}:{label}:{source}").sample(items, min(len(items), per_source))
            for source, items in sorted(by_label[label].items())
        ]
        chosen.extend(_round_robin(pools, per_class))
    random.Random(seed).shuffle(chosen)
    return chosen


def _round_robin(pools: list[list[LabelledPrompt]], limit: int) -> list[LabelledPrompt]:
    """One item from each pool in turn, so a small source is used whole before a big one fills the rest."""
    taken: list[LabelledPrompt] = []
    depth = 0
    while len(taken) < limit and any(depth < len(pool) for pool in pools):
        taken.extend(pool[depth] for pool in pools if depth < len(pool))
        depth += 1
    return taken[:limit]
