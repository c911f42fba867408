"""Memory: what one gateway worker holds resident with a router loaded and used, per router."""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.context import BenchContext
from bench.prompts import long_prompts, short_prompts
from bench.report import Section, Table, TargetCheck
from bench.stack import UPSTREAM_MODEL, base_url, fake_engine, gateway, train_artifact, write_registry

WORKER_MB_GOAL = 250.0


def memory_mb(pid: int) -> dict[str, float]:
    """Resident (`VmRSS`) and peak resident (`VmHWM`) megabytes of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return fields


def fast_stage_alone(artifact: Path, work_dir: Path) -> Path | None:
    """The cascade's fast stage as an artifact of its own (the static router without a second stage)."""
    fast = artifact / "fast"
    if not (fast / "meta.json").is_file():
        return None
    copy = work_dir / "router-fast-alone"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(fast, copy)
    return copy


def run(ctx: BenchContext) -> Section:
    """Start the gateway per router, route short and long prompts through it, then read its memory."""
    artifact, origin = ctx.artifact()
    routers = [(f"default ({origin})", artifact)]
    fast = fast_stage_alone(artifact, ctx.work_dir)
    if fast is not None:
        routers.append(("its fast stage alone", fast))
    routers.append(("hashing n-grams", train_artifact(ctx.work_dir / "router-hashing", "hashing")))
    texts = short_prompts(32) + long_prompts(8)
    table = Table(["router", "requests", "resident MB", "peak resident MB"])
    checks = []
    with ExitStack() as stack:
        engine = stack.enter_context(fake_engine(ctx.log_dir, 4, 0.0))
        for index, (label, path) in enumerate(routers):
            ctx.say(f"memory: {label}")
            registry = write_registry(ctx.work_dir / f"memory-{index}.yaml", base_url(engine), UPSTREAM_MODEL, path)
            with gateway(ctx.log_dir, registry, name=f"gateway-memory-{index}") as gw:
                with httpx.Client(base_url=base_url(gw), timeout=60, trust_env=False) as client:
                    for text in texts:
                        client.post("/chat/completions", json={
                            "model": "auto", "max_tokens": 4, "messages": [{"role": "user", "content": text}],
                        }).raise_for_status()
                figures = memory_mb(gw.pid)
            table.rows.append([label, str(len(texts)), f"{figures['VmRSS']:.0f}", f"{figures['VmHWM']:.0f}"])
            if index == 0:
                checks.append(TargetCheck("one worker's peak resident memory, default router",
                                          f"≤ {WORKER_MB_GOAL:.0f} MB", f"{figures['VmHWM']:.0f} MB",
                                          figures["VmHWM"] <= WORKER_MB_GOAL))
    intro = (
        "`coe serve` (one worker, own process) in front of a fake engine; after "
        f"{len(texts)} routed requests (short and ~2,000-character prompts, so every router stage has run), "
        "the process's resident and peak resident memory from /proc. Each `--workers` copy holds the same again."
    )
    return Section("Memory: one gateway worker", intro, [table], checks=checks)
