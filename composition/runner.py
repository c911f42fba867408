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


def expert_key(expert: ExpertConfig, likelihood: bool = True, answers: bool = True) -> str:
    """Cache key: the expert's name plus what makes its answers differ (engine, model, limits, what is scored)."""
    what: list[object] = [expert.base_url, expert.model, MAX_TOKENS, likelihood]
    if not answers:  # appended only when set, so caches written before the option keep their keys
        what.append("no-answers")
    digest = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:12]
    return f"{expert.name}-{digest}"


def interleaved(items: Sequence[EvalItem]) -> list[EvalItem]:
    """The items taken in turn from each category (first of each, then second of each, ...)."""
    by_category: dict[str, list[EvalItem]] = {}
    for item in items:
        by_category.setdefault(item.category, []).append(item)
    queues = list(by_category.values())
    return [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]


async def _likelihood(client: httpx.AsyncClient, expert: ExpertConfig, item: EvalItem) -> dict[str, Any]:
    try:
        loglik, tokens = await reference_logprob(client, expert, item)
    except (httpx.HTTPError, KeyError, IndexError, ValueError, RuntimeError) as exc:
        return {"loglik": None, "error": f"{type(exc).__name__}: {exc}"[:400]}
    return {"loglik": loglik, "ref_tokens": tokens, "error": None}


async def _answer(client: httpx.AsyncClient, expert: ExpertConfig, item: EvalItem) -> dict[str, Any]:
    row: dict[str, Any] = {"output": "", "exact": None, "error": None}
    try:
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
    likelihood: bool = True,
    answers: bool = True,
    reference_concurrency: int = 1,
) -> list[Result]:
    """Every (expert, item) pair, from the cache where answered before; failed ones are asked again on the next run."""
    # Round-robin over categories, every expert per item: a run stopped half-way still fills every cell evenly.
    pairs = [(expert, item) for item in interleaved(items) for expert in experts]

    def key(expert: ExpertConfig) -> str:
        return expert_key(expert, likelihood, answers)

    todo = [(e, i) for e, i in pairs if (cache.get(key(e), i.id) or {"error": "new"})["error"]]
    say(f"{len(pairs)} answers wanted, {len(pairs) - len(todo)} cached, {len(todo)} to ask "
        f"({len(experts)} experts, {len(items)} items, concurrency {concurrency})")
    done = 0
    steps = (1 + answers) * len(todo)  # a likelihood and an answer per pair, or the likelihood alone
    phase = "reference likelihoods"
    started = time.monotonic()
    likelihoods: dict[tuple[str, str], dict[str, Any]] = {}

    async def progress() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            elapsed = time.monotonic() - started
            eta = elapsed / done * (steps - done) if done else float("nan")
            say(f"{phase}: {done}/{steps} requests done, {elapsed:.0f} s elapsed, ~{eta:.0f} s left")

    async def score_reference(client: httpx.AsyncClient, expert: ExpertConfig, item: EvalItem) -> None:
        nonlocal done
        skipped = {"loglik": None, "error": None}
        likelihoods[(expert.name, item.id)] = await _likelihood(client, expert, item) if likelihood else skipped
        done += 1

    gate = asyncio.Semaphore(concurrency)

    async def answer(client: httpx.AsyncClient, expert: ExpertConfig, item: EvalItem) -> None:
        nonlocal done
        row: dict[str, Any] = {"output": "", "exact": None, "error": None}
        if answers:
            async with gate:
                row = await _answer(client, expert, item)
        scored = likelihoods[(expert.name, item.id)]
        done += answers
        cache.put(key(expert), item.id, {**row, **scored, "error": scored["error"] or row["error"]})

    reporter = asyncio.create_task(progress())
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            # vLLM 0.32 on the CPU with LoRA enabled fails a prompt-logprobs request batched with any other
            # (its LoRA logits kernel is sized for one row per request): by default score the references one
            # at a time, before and apart from the generations; engines without LoRA can take more at once.
            references = asyncio.Semaphore(max(1, reference_concurrency))

            async def one_reference(expert: ExpertConfig, item: EvalItem) -> None:
                async with references:
                    await score_reference(client, expert, item)
                if not answers:  # nothing more to ask: cache it now, so a stopped run keeps what it scored
                    await answer(client, expert, item)

            await asyncio.gather(*(one_reference(e, i) for e, i in todo))
            if answers:
                phase = "answers"
                await asyncio.gather(*(answer(client, e, i) for e, i in todo))
    finally:
        reporter.cancel()
    if todo:
        say(f"{steps}/{steps} requests done in {time.monotonic() - started:.0f} s")
    results = []
    for expert, item in pairs:
        row = cache.get(key(expert), item.id) or {}
        results.append(
            Result(expert.name, item, row.get("exact"), row.get("loglik"), row.get("output", ""), row.get("error"))
        )
    errors = [r for r in results if r.error]
    if errors:
        say(f"{len(errors)} answers failed, e.g. {errors[0].expert}/{errors[0].item.id}: {errors[0].error}")
    return results
