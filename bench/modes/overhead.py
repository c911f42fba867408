"""Overhead: a paced fake engine direct, through the gateway pinned, and routed (`auto`), interleaved by round."""

from __future__ import annotations

import asyncio
import math
from contextlib import ExitStack
from urllib.parse import urlsplit

from bench.context import BenchContext
from bench.loadgen import LoadSpec
from bench.modes.hot_path import profile_under_load
from bench.prompts import short_prompts
from bench.report import Section, Table, TargetCheck
from bench.rounds import Comparison, Target, run_rounds
from bench.stack import EXPERT, UPSTREAM_MODEL, base_url, fake_engine, gateway, train_artifact, write_registry

PINNED_ADDED_TTFT_MS = 1.0
PINNED_E2E_RATIO = 1.02
PINNED_E2E_RATIO_64 = 1.05
ROUTED_ADDED_TTFT_MS = 5.0
FAST_ROUTED_ADDED_TTFT_MS = 2.0


def run(ctx: BenchContext) -> Section:
    """Measure the gateway's added latency and CPU per request against the direct path."""
    cfg = ctx.config
    artifact, origin = ctx.artifact()
    hashing = train_artifact(ctx.work_dir / "router-hashing", "hashing")
    with ExitStack() as stack:
        engine = stack.enter_context(fake_engine(ctx.log_dir, cfg.tokens, cfg.gap_s))
        engine_url = base_url(engine)
        port = int(urlsplit(engine_url).port or 0)
        gw = stack.enter_context(gateway(ctx.log_dir, write_registry(
            ctx.work_dir / "overhead-experts.yaml", engine_url, UPSTREAM_MODEL, artifact)))
        fast_registry = write_registry(ctx.work_dir / "overhead-hashing-experts.yaml", engine_url, UPSTREAM_MODEL,
                                       hashing)
        fast = stack.enter_context(gateway(ctx.log_dir, fast_registry, name="gateway-hashing"))
        targets = [
            Target("direct", engine_url, UPSTREAM_MODEL, engine),
            Target("pinned", base_url(gw), EXPERT, gw, upstream_port=port),
            Target("auto", base_url(gw), "auto", gw, upstream_port=port),
            Target("auto (hashing router)", base_url(fast), "auto", fast, upstream_port=port),
        ]
        prompts = short_prompts()

        def spec_for(target: Target, streams: int) -> LoadSpec:
            return LoadSpec(target.base_url, target.model, streams, cfg.overhead_requests.get(streams, streams),
                            cfg.load_cap_s, max_tokens=cfg.tokens, prompts=prompts)

        ctx.say(f"overhead: {len(targets)} targets x {list(cfg.overhead_requests)} streams x {cfg.rounds} rounds")
        measurements = asyncio.run(run_rounds(targets, list(cfg.overhead_requests), cfg.rounds, spec_for, ctx.say))
        comparison, levels = Comparison(measurements), list(cfg.overhead_requests)
        section = summarise(comparison, levels, [t.name for t in targets[1:]])
        for label, name in (("direct", "direct"), ("pinned", "pinned"), ("routed (MiniLM)", "auto"),
                            ("routed (hashing)", "auto (hashing router)")):
            ctx.curves.add(label, comparison, name, levels)
        section.intro = (
            f"Fake engine (`python -m coe_testing.fake_engine`, own process): {cfg.tokens} tokens per answer, "
            f"{cfg.gap_s * 1000:.0f} ms between tokens, first token at once. Gateway: `coe serve` (own process, "
            f"log level warning, request log on), router artifact: {origin}; a second gateway loads a router "
            f"with the hashing embedder. Each round runs every concurrency, and in it every target with a "
            f"rotating start. {cfg.rounds} rounds; requests per target and round: {cfg.overhead_requests}. "
            "TTFT is the time to the first chunk with content, as the client sees it. Added TTFT is per round "
            "(gateway percentile − direct percentile), then the median over rounds with [lowest – highest]."
        )
        if any(check.met is False for check in section.checks):
            table, note = profile_under_load(ctx, gw, spec_for(targets[1], 16))
            section.notes.append(note)
            if table is not None:
                section.tables.append(table)
    return section


def summarise(comparison: Comparison, levels: list[int], names: list[str]) -> Section:
    """The overhead table and the target checks."""
    table = Table(["streams", "path", "TTFT p50 ms", "added TTFT p50 ms", "added TTFT p99 ms", "e2e ratio",
                   "throughput ratio", "CPU ms/request (gateway; engine on direct)",
                   "upstream connections closed/request", "errors"])
    for streams in levels:
        table.rows.append([*comparison.row("direct", streams), "–", comparison.errors_cell("direct", streams)])
        for name in names:
            table.rows.append([
                *comparison.row(name, streams),
                comparison.upstream_closes_per_request(name, streams).format(2),
                comparison.errors_cell(name, streams),
            ])
    pinned_ttft = comparison.added_ttft_ms("pinned", "direct", 1)
    pinned_e2e = comparison.e2e_ratio("pinned", "direct", 16)
    pinned_e2e_64 = comparison.e2e_ratio("pinned", "direct", 64)
    routed = comparison.added_ttft_ms("auto", "direct", 1)
    fast = comparison.added_ttft_ms("auto (hashing router)", "direct", 1)
    checks = [
        _check("pinned: added TTFT, 1 stream", f"≤ {PINNED_ADDED_TTFT_MS} ms", pinned_ttft.median,
               PINNED_ADDED_TTFT_MS, pinned_ttft.format(2, " ms")),
        _check("pinned: end-to-end ratio, 16 streams", f"≤ {PINNED_E2E_RATIO}", pinned_e2e.median,
               PINNED_E2E_RATIO, pinned_e2e.format(3)),
        _check("pinned: end-to-end ratio, 64 streams", f"≤ {PINNED_E2E_RATIO_64}", pinned_e2e_64.median,
               PINNED_E2E_RATIO_64, pinned_e2e_64.format(3)),
        _check("auto (default MiniLM router): added TTFT, 1 stream", f"≤ {ROUTED_ADDED_TTFT_MS} ms", routed.median,
               ROUTED_ADDED_TTFT_MS, routed.format(2, " ms")),
        _check("auto (hashing router): added TTFT, 1 stream", f"≤ {FAST_ROUTED_ADDED_TTFT_MS} ms", fast.median,
               FAST_ROUTED_ADDED_TTFT_MS, fast.format(2, " ms")),
    ]
    return Section("Overhead: gateway vs direct, fake engine", tables=[table], checks=checks,
                   notes=readings(comparison, levels))


def readings(comparison: Comparison, levels: list[int]) -> list[str]:
    """Plain statements the figures support, so a reader need not derive them."""
    notes = []
    closes = comparison.upstream_closes_per_request("pinned", levels[0]).median
    if closes >= 0.5:
        notes.append(
            f"The gateway closed {closes:.2f} connections to the engine per request at {levels[0]} stream "
            "(TIME_WAIT sockets towards the engine's port, counted in /proc/net/tcp): it opens a fresh upstream "
            "connection for each streamed request instead of reusing its pool."
        )
    for streams in levels:
        ours = comparison.cpu_ms_per_request("pinned", streams).median
        engine = comparison.cpu_ms_per_request("direct", streams).median
        if not (math.isnan(ours) or math.isnan(engine)) and engine > 0:
            notes.append(f"{streams} stream(s): the gateway spent {ours / engine:.1f}× the fake engine's CPU time "
                         f"per request ({ours:.2f} ms against {engine:.2f} ms).")
    client = {streams: (comparison.client_cpu_ms_per_request("direct", streams).median,
                        comparison.client_cpu_ms_per_request("pinned", streams).median) for streams in levels}
    if not any(math.isnan(value) for pair in client.values() for value in pair):
        # Client, engine and gateway share the machine's cores: a heavy client slows both paths and hides part of
        # what the gateway costs once the cores are saturated, so its share is stated beside the servers'.
        notes.append("The load generator (httpx, in the bench's own process) spent " + ", ".join(
            f"{direct:.2f} / {pinned:.2f} ms at {streams}" for streams, (direct, pinned) in client.items())
            + " stream(s) of CPU per request (direct / pinned), on the same cores as the engine and the gateway.")
    return notes


def _check(name: str, goal: str, value: float, limit: float, measured: str) -> TargetCheck:
    return TargetCheck(name, goal, measured, None if math.isnan(value) else value <= limit)
