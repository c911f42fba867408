"""Routing: the cost of one routing decision, split into tokenise, embed and classify."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median_low
from typing import Any

from bench.context import BenchContext
from bench.prompts import long_prompts, post_prompts, short_prompts
from bench.report import Section, Table, TargetCheck
from bench.stack import train_artifact
from bench.stats import percentile

STAGES = ("tokenise", "embed", "classify", "total")
SHORT, POSTS = "short", "posts"


def _timed(router: Any, text: str) -> dict[str, float]:
    started = time.perf_counter()
    _, timings = router.route_timed(text)
    return {**timings, "total": time.perf_counter() - started}


def measure(router: Any, texts: Sequence[str], queries: int, threads: int, cap_s: float) -> list[dict[str, float]]:
    """Up to `queries` classifications within `cap_s` seconds, from `threads` threads at once."""
    deadline = time.perf_counter() + cap_s
    samples: list[dict[str, float]] = []
    lock = threading.Lock()
    issued = 0

    def worker() -> None:
        nonlocal issued
        while time.perf_counter() < deadline:
            with lock:
                if issued >= queries:
                    return
                index = issued
                issued += 1
            sample = _timed(router, texts[index % len(texts)])
            with lock:
                samples.append(sample)

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return samples


def _row(label: str, kind: str, threads: int, samples: list[dict[str, float]]) -> list[str]:
    cells = [label, kind, str(threads), str(len(samples))]
    for stage in STAGES:
        values = [s.get(stage, 0.0) for s in samples]
        cells.append(f"{1000 * percentile(values, 50):.2f} / {1000 * percentile(values, 99):.2f}")
    rate = decisions_per_s(samples, threads)
    cells.append(f"{rate:,.0f}" if rate else "–")
    return cells


def decisions_per_s(samples: list[dict[str, float]], threads: int) -> float:
    """Decisions completed per second by `threads` threads routing back to back (0 with no samples)."""
    busy = sum(s.get("total", 0.0) for s in samples)
    return threads * len(samples) / busy if busy > 0 else 0.0


def routers(ctx: BenchContext) -> list[tuple[str, Path]]:
    """The default router and the hashing one, as the overhead mode loads them."""
    artifact, origin = ctx.artifact()
    return [(f"MiniLM ({origin})", artifact),
            ("hashing n-grams (trained here)", train_artifact(ctx.work_dir / "router-hashing", "hashing"))]


def run(ctx: BenchContext, load: Callable[[Path], Any] | None = None) -> Section:
    """p50/p99 per stage for short questions, long posts and a worst case, single and concurrent, per router."""
    from router_model.cascade import load_router

    cfg = ctx.config
    load = load or load_router
    table = Table(["router", "queries", "threads", "n", *(f"{s} p50 / p99 ms" for s in STAGES), "decisions/s"])
    shorts, posts = short_prompts(), post_prompts()
    kinds = {
        SHORT: (f"short (median {median_low(map(len, shorts))} chars)", shorts),
        POSTS: (f"posts (median {median_low(map(len, posts))} chars, one text each)", posts),
        "long": (f"long ({len(long_prompts(1)[0])} chars of unrelated questions joined)", long_prompts()),
    }
    checks: list[TargetCheck] = []
    for index, (label, artifact) in enumerate(routers(ctx)):
        router = load(artifact)
        router.warm()
        for key, (kind, texts) in kinds.items():
            for threads in (1, cfg.routing_threads):
                ctx.say(f"  routing: {label.split(' ')[0]}, {kind.split(' ')[0]}, {threads} thread(s)")
                samples = measure(router, texts, cfg.routing_queries, threads, cfg.routing_row_cap_s)
                table.rows.append(_row(label, kind, threads, samples))
                if index == 0 and threads == 1:
                    checks.extend(_checks(key, samples))
    intro = (
        "In-process `route_timed` on the project's own prompts (`router_model/data`): short questions (at most "
        "300 characters), long prompts written as one text (help posts, pasted code and logs, at least 1,500 "
        "characters, cut to 2,000) and a worst case of unrelated short questions joined to 2,000 characters, "
        f"up to {cfg.routing_queries} queries or {cfg.routing_row_cap_s:.0f} s per row (n: how many ran), "
        "after a warm-up. With several threads each figure is one query's latency while the others run (the "
        "gateway classifies in worker threads); decisions/s is what those threads completed together per "
        "second. The stage columns are the first (static) stage's; `total` includes the second stage where the "
        "first was unsure. The end-to-end cost through the gateway is the `auto` rows of the overhead table."
    )
    return Section("Routing: cost of a routing decision", intro, [table], checks=checks)


def _checks(key: str, samples: list[dict[str, float]]) -> list[TargetCheck]:
    """The issue's latency goals for one decision on one thread, default router."""
    totals = [1000 * s["total"] for s in samples]
    if not totals:
        return []
    p50, p99 = percentile(totals, 50), percentile(totals, 99)
    if key == SHORT:
        rate = decisions_per_s(samples, 1)
        return [
            TargetCheck("routing: short query, p50 (one thread)", "≤ 1.0 ms", f"{p50:.2f} ms", p50 <= 1.0),
            TargetCheck("routing: short query, p99 (one thread)", "≤ 3.0 ms", f"{p99:.2f} ms", p99 <= 3.0),
            TargetCheck("routing: decisions per second, short queries (one thread)", "≥ 2,000", f"{rate:,.0f}",
                        rate >= 2000),
        ]
    if key == POSTS:
        return [TargetCheck("routing: 2,000-character prompt, p50 (one thread)", "≤ 5.0 ms", f"{p50:.2f} ms",
                            p50 <= 5.0)]
    return []
