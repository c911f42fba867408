"""How an expert's engine is started locally (`coe up`); optional in the registry."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LaunchSpec(BaseModel):
    """One local engine process to start for an expert."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["vllm"] = "vllm"
    model: str = Field(description="local model id known to `coe models prepare`")
    port: int = Field(gt=0, lt=65536)
    args: list[str] = Field(default_factory=list, description="extra engine command-line arguments")
