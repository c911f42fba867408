"""Routing: the cost of one routing decision, split into tokenise, embed and classify."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.context import BenchContext
from bench.prompts import long_prompts, short_prompts
from bench.report import Section, Table
from bench.stack import train_artifact
from bench.stats import percentile

STAGES = ("tokenise", "embed", "classify", "total")


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
    return cells


@contextmanager
def torch_threads_set(count: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op threads set to `count` (None: as the library chose)."""
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def routers(ctx: BenchContext) -> list[tuple[str, Path]]:
    """The default router and the hashing one, as the overhead mode loads them."""
    artifact, origin = ctx.artifact()
    return [(f"MiniLM ({origin})", artifact),
            ("hashing n-grams (trained here)", train_artifact(ctx.work_dir / "router-hashing", "hashing"))]


def run(ctx: BenchContext, load: Callable[[Path], Any] | None = None) -> Section:
    """p50/p99 per stage for short and long queries, single and concurrent, for each router."""
    from router_model.cascade import load_router

    cfg = ctx.config
    load = load or load_router
    table = Table(["router", "queries", "threads", "n", *(f"{s} p50 / p99 ms" for s in STAGES)])
    kinds = {"short (median 38 chars)": short_prompts(), f"long ({len(long_prompts(1)[0])} chars)": long_prompts()}
    variants: list[tuple[str, Path, int | None]] = [(label, artifact, None) for label, artifact in routers(ctx)]
    variants.append((f"{variants[0][0]}, torch.set_num_threads(1)", variants[0][1], 1))
    for label, artifact, torch_threads in variants:
        with torch_threads_set(torch_threads):
            router = load(artifact)
            router.warm()
            for kind, texts in kinds.items():
                for threads in (1, cfg.routing_threads):
                    ctx.say(f"  routing: {label.split(' ')[0]}, {kind.split(' ')[0]}, {threads} thread(s)")
                    samples = measure(router, texts, cfg.routing_queries, threads, cfg.routing_row_cap_s)
                    table.rows.append(_row(label, kind, threads, samples))
    intro = (
        "In-process `QueryRouter.route_timed` on the project's own prompts (`router_model/data`), "
        f"up to {cfg.routing_queries} queries or {cfg.routing_row_cap_s:.0f} s per row (n: how many ran), "
        "after a warm-up. With several threads each figure is one query's latency while the others run (the "
        "gateway classifies in worker threads). The last rows repeat the MiniLM router with torch limited to one "
        "intra-op thread: on a busy machine, torch's default of one thread per core makes its threads wait for "
        "each other. The end-to-end cost through the gateway is the `auto` rows of the overhead table."
    )
    return Section("Routing: cost of a routing decision", intro, [table])
