"""Request bodies as the OpenAPI document shows them; documentation only (the engine validates the rest)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Common(_Open):
    model: str = Field(default="auto", description="'auto' (routed; also when absent) or an expert's name")
    stream: bool = False
    stream_options: dict[str, Any] | None = None


class ChatCompletionBody(_Common):
    """Any body vLLM's chat endpoint accepts; the gateway reads `model`, `messages`, `stream`."""

    messages: list[dict[str, Any]]


class CompletionBody(_Common):
    """Any body vLLM's completions endpoint accepts; the gateway reads `model`, `prompt`, `stream`."""

    prompt: str | list[str] | list[int] | list[list[int]] | None = None
