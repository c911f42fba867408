"""Capacity: the gateway alone on one core relaying a zero-gap fake engine as fast as it can."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from bench.context import BenchContext
from bench.loadgen import LoadSpec, run_load
from bench.modes.hot_path import profile_under_load
from bench.report import Section, Table, TargetCheck
from bench.stack import EXPERT, UPSTREAM_MODEL, base_url, fake_engine, gateway, write_registry
from bench.stats import Spread

REQUESTS_PER_CPU_S = 320  # twice the relay's ceiling before the hot path was reworked
CHUNKS_PER_CPU_S = 20_000


@contextmanager
def pinned_to(cores: set[int]) -> Iterator[None]:
    """Run the block (the load generator) on the given cores, then restore this process's affinity."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def core_split() -> tuple[set[int], set[int]]:
    """The gateway's core, and the cores left for the engine and the client."""
    cores = sorted(os.sched_getaffinity(0))
    return {cores[0]}, set(cores[1:]) or {cores[0]}


def run(ctx: BenchContext) -> Section:
    """Chunks/s and requests/s the gateway relays per CPU-second, pinned to one core."""
    cfg = ctx.config
    artifact, _ = ctx.artifact()
    gateway_cores, other_cores = core_split()
    rows: dict[str, list[float]] = {k: [] for k in ("rps", "cps", "cpu", "util", "rps_core", "cps_core")}
    errors = total = 0
    profile: tuple[Table | None, str] | None = None
    with ExitStack() as stack:
        engine = stack.enter_context(fake_engine(ctx.log_dir, cfg.capacity_tokens, 0.0, cores=other_cores))
        registry = write_registry(ctx.work_dir / "capacity-experts.yaml", base_url(engine), UPSTREAM_MODEL, artifact)
        gw = stack.enter_context(gateway(ctx.log_dir, registry, cores=gateway_cores))
        spec = LoadSpec(base_url(gw), EXPERT, cfg.capacity_streams, 1_000_000, cfg.capacity_duration_s,
                        max_tokens=cfg.capacity_tokens)
        with pinned_to(other_cores):
            asyncio.run(run_load(LoadSpec(spec.base_url, EXPERT, 1, 3, 30.0)))
            for index in range(cfg.capacity_rounds):
                before = gw.cpu_seconds()
                result = asyncio.run(run_load(spec))
                cpu = gw.cpu_seconds() - before
                ok = result.ok
                chunks = sum(s.chunks for s in ok)
                errors, total = errors + result.errors, total + len(result.samples)
                rows["rps"].append(len(ok) / result.wall_s)
                rows["cps"].append(chunks / result.wall_s)
                rows["cpu"].append(1000 * cpu / max(len(ok), 1))
                rows["util"].append(cpu / result.wall_s)
                rows["rps_core"].append(len(ok) / cpu if cpu else float("nan"))
                rows["cps_core"].append(chunks / cpu if cpu else float("nan"))
                ctx.say(f"  capacity round {index + 1}: {len(ok)} requests, {rows['rps'][-1]:.0f} req/s, "
                        f"gateway core busy {100 * rows['util'][-1]:.0f}%")
            checks = ceiling_checks(Spread.of(rows["rps_core"]), Spread.of(rows["cps_core"]))
            if any(check.met is False for check in checks):
                profile = profile_under_load(ctx, gw, spec)
    table = Table(["figure", "median [min – max] over rounds"], [
        ["requests/s achieved", Spread.of(rows["rps"]).format(0)],
        ["content chunks/s achieved", Spread.of(rows["cps"]).format(0)],
        ["gateway core busy (CPU-s per s)", Spread.of(rows["util"]).format(2)],
        ["gateway CPU ms per request", Spread.of(rows["cpu"]).format(2)],
        ["**requests per gateway CPU-second (per-core ceiling)**", Spread.of(rows["rps_core"]).format(0)],
        ["**chunks per gateway CPU-second (per-core ceiling)**", Spread.of(rows["cps_core"]).format(0)],
        ["failed requests", f"{errors}/{total}"],
    ])
    intro = (
        f"Fake engine at zero gap, {cfg.capacity_tokens} tokens per answer, pinned with the load generator to "
        f"core(s) {sorted(other_cores)}; the gateway (`coe serve`) pinned to core {sorted(gateway_cores)} "
        f"(`sched_setaffinity` before exec, so all its threads inherit it). {cfg.capacity_streams} streams, "
        f"{cfg.capacity_duration_s:.0f} s per round, {cfg.capacity_rounds} rounds. The ceiling per core is what "
        "the gateway relays per second of its own CPU time; when its core is not fully busy, the engine or the "
        "client on the other core was the bottleneck, and the ceiling is the figure to read."
    )
    section = Section("Capacity: the gateway's relay ceiling per core", intro, [table], checks=checks)
    if profile is not None:
        section.notes.append(profile[1])
        if profile[0] is not None:
            section.tables.append(profile[0])
    return section


def ceiling_checks(requests: Spread, chunks: Spread) -> list[TargetCheck]:
    """The per-core ceiling against its targets."""
    return [
        TargetCheck("relay ceiling: requests per gateway CPU-second", f"≥ {REQUESTS_PER_CPU_S}",
                    requests.format(0), None if requests.median != requests.median
                    else requests.median >= REQUESTS_PER_CPU_S),
        TargetCheck("relay ceiling: chunks per gateway CPU-second", f"≥ {CHUNKS_PER_CPU_S:,}",
                    chunks.format(0), None if chunks.median != chunks.median else chunks.median >= CHUNKS_PER_CPU_S),
    ]
