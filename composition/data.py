"""Eval items: category-labelled prompts with reference answers, read from JSON lines files or folders."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("numeric", "choice", "code_tests", "short", "free")


class DataError(ValueError):
    """An eval file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class EvalItem:
    """One prompt with its reference answer and how an answer to it is scored."""

    id: str
    category: str
    kind: str
    prompt: str
    reference: str
    source: str = ""
    answer: str | None = None
    labels: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    test_setup: str = ""
    router_pool: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def item_from_record(record: dict[str, Any]) -> EvalItem:
    """Build an item from one record (fields as in the expert data's README)."""
    kind = record["kind"]
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    answer = record.get("answer")
    return EvalItem(
        id=str(record["id"]),
        category=str(record["category"]),
        kind=kind,
        prompt=str(record["prompt"]),
        reference=str(record["reference"]),
        source=str(record.get("source", "")),
        answer=None if answer is None else str(answer),
        labels=tuple(str(x) for x in record.get("labels") or ()),
        aliases=tuple(str(x) for x in record.get("aliases") or ()),
        tests=tuple(record.get("tests") or ()),
        test_setup=str(record.get("test_setup") or ""),
        router_pool=bool(record.get("router_pool", True)),
    )


def _files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(path.glob("*.jsonl"))
        elif path.is_file():
            found.append(path)
        else:
            raise DataError(f"{path}: no such eval file or folder")
    return found


def read_items(paths: Sequence[Path]) -> list[EvalItem]:
    """Every item of the given files (folders: their *.jsonl), in file order."""
    items: list[EvalItem] = []
    for path in _files(paths):
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
            if not line.strip():
                continue
            try:
                items.append(item_from_record(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{number}: {exc}") from exc
    return items


def limit_per_category(items: Sequence[EvalItem], limit: int | None, seed: int = 0) -> list[EvalItem]:
    """At most `limit` items per category, taken round-robin over sources from a seeded shuffle."""
    if limit is None:
        return list(items)
    by_category: dict[str, dict[str, list[EvalItem]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        by_category[item.category][item.source].append(item)
    chosen: list[EvalItem] = []
    for category in sorted(by_category):
        pools = [pool[:] for _, pool in sorted(by_category[category].items())]
        for pool in pools:
            random.Random(f"{seed}:{category}:{pool[0].source}").shuffle(pool)
        taken: list[EvalItem] = []
        while len(taken) < limit and any(pools):
            for pool in pools:
                if pool and len(taken) < limit:
                    taken.append(pool.pop())
        chosen += taken
    return chosen
