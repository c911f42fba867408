"""How an expert's engine is started locally (`coe up`): the registry's `launch` section, read here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.registry import ExpertConfig

# Flags `coe up` sets itself from the spec; giving them in `args` as well would contradict the spec.
RESERVED_ENGINE_FLAGS = (
    "--model",
    "--port",
    "--host",
    "--served-model-name",
    "--enable-lora",
    "--lora-modules",
    "--max-loras",
)


class LaunchSpec(BaseModel):
    """One local engine process to start for an expert.

    Experts whose specs name the same `port` share one engine: the one without `adapter` is served under
    the base model, each one with `adapter` is served as a LoRA adapter on that base.
    """

    model_config = ConfigDict(extra="forbid")

    engine: Literal["vllm"] = "vllm"
    model: str = Field(description="local model id known to `coe models prepare`")
    port: int = Field(gt=0, lt=65536)
    adapter: str | None = Field(
        default=None, description="local LoRA adapter id known to `coe models prepare`, served on `model`"
    )
    args: list[str] = Field(default_factory=list, description="extra engine command-line arguments")
    kv_cache_gib: int = Field(default=1, gt=0, le=64, description="KV-cache memory of the engine (GiB)")

    @field_validator("args")
    @classmethod
    def _no_reserved_flags(cls, value: list[str]) -> list[str]:
        for arg in value:
            flag = arg.split("=", 1)[0]
            if flag in RESERVED_ENGINE_FLAGS:
                raise ValueError(f"{flag} is set from the launch spec itself; remove it from args")
        return value


class LaunchSpecError(ValueError):
    """An expert's `launch` section that `coe up` cannot use; the message names the expert, key and reason."""


def launch_of(expert: ExpertConfig) -> LaunchSpec | None:
    """The expert's validated launch spec, or None when it has no `launch` section."""
    if expert.launch is None:
        return None
    try:
        return LaunchSpec.model_validate(expert.launch)
    except ValidationError as exc:
        problems = "; ".join(
            f"launch.{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise LaunchSpecError(f"expert {expert.name!r}: {problems}") from exc
