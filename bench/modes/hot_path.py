"""Profile a server while a load runs against it, for modes whose target was missed."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bench.context import BenchContext
from bench.loadgen import LoadSpec, run_load
from bench.procs import ServerProcess
from bench.profiling import hot_frames, start_sampling
from bench.report import Table


def profile_under_load(ctx: BenchContext, server: ServerProcess, spec: LoadSpec) -> tuple[Table | None, str]:
    """Sample the server's stacks with py-spy during a load of `ctx.config.profile_s` seconds."""
    seconds = ctx.config.profile_s
    out = ctx.work_dir / f"profile-{server.name}.txt"
    sampler = start_sampling(server.pid, seconds, out)
    if sampler is None:
        return None, "A target was missed, but py-spy is not installed (`pip install py-spy`), so no profile."
    ctx.say(f"profiling {server.name} for {seconds} s under {spec.streams} streams")
    asyncio.run(run_load(replace(spec, requests=100_000, max_duration_s=float(seconds))))
    try:
        sampler.wait(seconds + 30)
    except Exception:
        sampler.kill()
        raise
    if sampler.returncode != 0 or not out.is_file():
        return None, f"py-spy could not sample the {server.name} (exit {sampler.returncode}); no profile."
    table, samples = hot_frames(out)
    note = (f"A target was missed, so the {server.name} was profiled with py-spy for {seconds} s under "
            f"{spec.streams} streams to `{spec.model}` ({samples} busy samples; threads parked waiting are left out). "
            "The table lists the frames most often on top of the stack (self), then the gateway's own frames by "
            "the share of samples they appear in (inclusive). `Runner.run` self time is the event loop's native "
            "code (uvloop: polling, socket reads and writes, callback dispatch).")
    return table, note
