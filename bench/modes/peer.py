"""Peer: LiteLLM's proxy and the gateway in front of the same fake engine, measured in the same rounds."""

from __future__ import annotations

import asyncio
import math
import secrets
from contextlib import ExitStack
from pathlib import Path

from bench.context import BenchContext
from bench.litellm_proxy import (
    LITELLM_REQUIREMENT,
    PEER_MODEL,
    LiteLLMUnavailable,
    ensure_litellm,
    litellm_server,
    litellm_version,
    write_config,
)
from bench.loadgen import LoadSpec
from bench.prompts import short_prompts
from bench.report import Section, Table, TargetCheck
from bench.rounds import Comparison, Target, run_rounds
from bench.stack import EXPERT, ROOT, UPSTREAM_MODEL, base_url, fake_engine, gateway, write_registry
from bench.vllm_serve import ServeRun, run_all
from bench.vllm_serve import table as serve_table

LITELLM_VENV = ROOT / ".venv-litellm"
ADVANTAGE = 3.0  # LiteLLM's added latency over ours, at least


def tokenizer_dir(ctx: BenchContext) -> Path:
    """A local tokenizer for vLLM's benchmark: the SmolLM2 folder `coe models prepare` makes (cached)."""
    from coe_local.models import default_cache_dir
    from coe_local.prepare import prepare_models

    return prepare_models(default_cache_dir(), ["smollm2-135m-instruct"], [], ctx.say).models["smollm2-135m-instruct"]


def run(ctx: BenchContext) -> Section:
    """Added latency of the gateway and of LiteLLM over the direct path, at 1 and 16 streams."""
    cfg = ctx.config
    levels = list(cfg.peer_requests)
    try:
        script = ensure_litellm(LITELLM_VENV, ctx.say)
    except LiteLLMUnavailable as exc:
        return Section("Peer: LiteLLM proxy", f"Not measured: {exc}.", checks=[
            TargetCheck(f"added latency ≥ {ADVANTAGE:.0f}× lower than LiteLLM", f"≥ {ADVANTAGE:.0f}×", "n/a", None)])
    ctx.versions["litellm (own venv)"] = litellm_version(LITELLM_VENV)
    artifact, _ = ctx.artifact()
    key = "sk-bench-" + secrets.token_hex(16)
    with ExitStack() as stack:
        engine = stack.enter_context(fake_engine(ctx.log_dir, cfg.tokens, cfg.gap_s, name="fake-engine-peer"))
        engine_url = base_url(engine)
        gw = stack.enter_context(gateway(ctx.log_dir, write_registry(
            ctx.work_dir / "peer-experts.yaml", engine_url, UPSTREAM_MODEL, artifact), name="gateway-peer"))
        config = write_config(ctx.work_dir / "litellm.yaml", engine_url, UPSTREAM_MODEL)
        proxy = stack.enter_context(litellm_server(script, config, ctx.log_dir, key))
        targets = [Target("direct", engine_url, UPSTREAM_MODEL, engine),
                   Target("coe gateway (pinned)", base_url(gw), EXPERT, gw),
                   Target("litellm proxy", base_url(proxy), PEER_MODEL, proxy, {"authorization": f"Bearer {key}"})]
        prompts = short_prompts()

        def spec_for(target: Target, streams: int) -> LoadSpec:
            return LoadSpec(target.base_url, target.model, streams, cfg.peer_requests.get(streams, streams),
                            cfg.load_cap_s, max_tokens=cfg.tokens, prompts=prompts, headers=target.headers)

        ctx.say(f"peer: {len(targets)} targets x {levels} streams x {cfg.rounds} rounds")
        comparison = Comparison(asyncio.run(run_rounds(targets, levels, cfg.rounds, spec_for, ctx.say)))
        section = summarise(comparison, levels)
        for label, name in (("direct", "direct"), ("pinned", "coe gateway (pinned)"),
                            ("LiteLLM proxy", "litellm proxy")):
            ctx.curves.add(label, comparison, name, levels)
        section.intro = (
            f"The same fake engine ({cfg.tokens} tokens, {cfg.gap_s * 1000:.0f} ms apart) behind `coe serve` and "
            f"behind LiteLLM's proxy (`{LITELLM_REQUIREMENT}` in its own virtualenv `.venv-litellm`, made by the "
            "benchmark when missing, because its pins differ from vLLM's; one worker, a master key, no database, "
            "model `openai/<engine model>` with the engine as `api_base`). Interleaved round by round, "
            f"{cfg.rounds} rounds, requests per target and round: {cfg.peer_requests}."
        )
        try:
            results = run_all(
                [ServeRun("direct", _origin(engine_url), UPSTREAM_MODEL),
                 ServeRun("coe gateway (pinned)", _origin(base_url(gw)), EXPERT),
                 ServeRun("litellm proxy", _origin(base_url(proxy)), PEER_MODEL)],
                tokenizer_dir(ctx), cfg.vllm_bench_prompts, 16, 64, cfg.tokens, ctx.work_dir / "vllm-bench-peer",
                api_key=key)
            section.tables.append(serve_table(results))
            section.notes.append(f"vLLM's `vllm.benchmarks.serve` (random data set, 64 input and {cfg.tokens} output "
                                 f"tokens, {cfg.vllm_bench_prompts} prompts, 16 at once), run against each path.")
        except Exception as exc:  # the comparison above stands on its own
            section.notes.append(f"vLLM's serving benchmark could not run here: `{type(exc).__name__}: {exc}`.")
    return section


def _origin(url: str) -> str:
    return url.removesuffix("/v1")


def summarise(comparison: Comparison, levels: list[int]) -> Section:
    """The side-by-side table and the 3× check at each concurrency."""
    ours, theirs = "coe gateway (pinned)", "litellm proxy"
    table = Table(["streams", "path", "TTFT p50 ms", "added TTFT p50 ms", "added TTFT p99 ms", "e2e ratio",
                   "throughput ratio", "CPU ms/request (proxy; engine on direct)", "errors"])
    checks = []
    for streams in levels:
        for name in ("direct", ours, theirs):
            table.rows.append([*comparison.row(name, streams), comparison.errors_cell(name, streams)])
        a = comparison.added_ttft_ms(ours, "direct", streams).median
        b = comparison.added_ttft_ms(theirs, "direct", streams).median
        ratio = b / a if a > 0 else math.inf
        measured = "n/a" if math.isnan(ratio) else f"{ratio:.1f}× (LiteLLM +{b:.2f} ms, ours +{a:.2f} ms)"
        checks.append(TargetCheck(f"added TTFT vs LiteLLM, {streams} stream(s)", f"≥ {ADVANTAGE:.0f}× lower",
                                  measured, None if math.isnan(ratio) else ratio >= ADVANTAGE))
    return Section("Peer: the gateway beside LiteLLM's proxy, same engine, same run", tables=[table], checks=checks)
