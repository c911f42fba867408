"""Ask every expert every item (bounded concurrency, cached, with progress) and score each answer."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from composition.cache import AnswerCache
from composition.client import MAX_TOKENS, generate, reference_logprob
from composition.data import EvalItem
from composition.sandbox import run_tests
from composition.scoring import exact_score, extract_code
from gateway.registry import ExpertConfig

Say = Callable[[str], None]
PROGRESS_EVERY_S = 10.0


def say_to_stderr(message: str) -> None:
    """Progress lines go to stderr so stdout stays for results."""
    print(f"coe experts eval: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Result:
    """One expert's answer to one item: its exact score (None where the kind has none) and likelihood."""

    expert: str
    item: EvalItem
    exact: float | None
    loglik: float | None
    output: str
    error: str | None = None


def expert_key(expert: ExpertConfig) -> str:
    """Cache key: the expert's name plus what makes its answers differ (engine, model, generation limits)."""
    digest = hashlib.sha256(json.dumps([expert.url, expert.model, MAX_TOKENS]).encode()).hexdigest()[:12]
    return f"{expert.name}-{digest}"


async def _score(client: httpx.AsyncClient, expert: ExpertConfig, item: EvalItem) -> dict[str, Any]:
    row: dict[str, Any] = {"output": "", "exact": None, "loglik": None, "error": None}
    try:
        row["loglik"], row["ref_tokens"] = await reference_logprob(client, expert, item)
        row["output"] = await generate(client, expert, item)
    except (httpx.HTTPError, KeyError, IndexError, ValueError, RuntimeError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"[:400]
        return row
    if item.kind == "code_tests":
        run = await run_tests(item.test_setup, extract_code(row["output"]), item.tests)
        row["exact"], row["tests"] = (1.0 if run.passed else 0.0), run.reason
    else:
        row["exact"] = exact_score(item, row["output"])
    return row


async def evaluate(
    experts: Sequence[ExpertConfig],
    items: Sequence[EvalItem],
    cache: AnswerCache,
    concurrency: int = 8,
    timeout_s: float = 600.0,
    say: Say = say_to_stderr,
) -> list[Result]:
    """Every (expert, item) pair, from the cache where answered before; failed ones are asked again on the next run."""
    pairs = [(expert, item) for expert in experts for item in items]
    todo = [(e, i) for e, i in pairs if (cache.get(expert_key(e), i.id) or {"error": "new"})["error"]]
    say(f"{len(pairs)} answers wanted, {len(pairs) - len(todo)} cached, {len(todo)} to ask "
        f"({len(experts)} experts, {len(items)} items, concurrency {concurrency})")
    gate = asyncio.Semaphore(concurrency)
    done = 0
    started = time.monotonic()

    async def one(client: httpx.AsyncClient, expert: ExpertConfig, item: EvalItem) -> None:
        nonlocal done
        async with gate:
            row = await _score(client, expert, item)
        cache.put(expert_key(expert), item.id, row)
        done += 1

    async def progress() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            elapsed = time.monotonic() - started
            eta = elapsed / done * (len(todo) - done) if done else float("nan")
            say(f"{done}/{len(todo)} answered, {elapsed:.0f} s elapsed, ~{eta:.0f} s left")

    reporter = asyncio.create_task(progress())
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            await asyncio.gather(*(one(client, e, i) for e, i in todo))
    finally:
        reporter.cancel()
    if todo:
        say(f"{len(todo)}/{len(todo)} answered in {time.monotonic() - started:.0f} s")
    results = []
    for expert, item in pairs:
        row = cache.get(expert_key(expert), item.id) or {}
        results.append(
            Result(expert.name, item, row.get("exact"), row.get("loglik"), row.get("output", ""), row.get("error"))
        )
    errors = [r for r in results if r.error]
    if errors:
        say(f"{len(errors)} answers failed, e.g. {errors[0].expert}/{errors[0].item.id}: {errors[0].error}")
    return results
