"""A bounded async load generator: streamed chat completions over loopback, capped in count and in time."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.loopback import require_loopback

# A chunk carrying text: `"content": "x..."` or `"text": "x..."` (role and finish chunks carry "").
NON_EMPTY_TEXT = re.compile(r'"(?:content|text)":\s*"(?!")')
# Past the duration cap, requests already running get this long to finish before they are cancelled.
DRAIN_S = 30.0


@dataclass(frozen=True)
class LoadSpec:
    """One load: where, which model, how many streams at once, and the two caps."""

    base_url: str  # ends in /v1
    model: str
    streams: int
    requests: int
    max_duration_s: float
    max_tokens: int = 32
    prompts: Sequence[str] = ("Write a short note about the sea.",)
    extra_body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    request_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        require_loopback(self.base_url)
        if self.streams < 1 or self.requests < 1 or self.max_duration_s <= 0:
            raise ValueError("streams, requests and max_duration_s must be positive")


@dataclass
class RequestSample:
    """What one request saw, in seconds from the moment it was sent."""

    ok: bool
    ttft_s: float | None
    e2e_s: float
    chunks: int
    completion_tokens: int | None = None
    error: str | None = None

    @property
    def tokens(self) -> int:
        """Completion tokens from the usage chunk, else the content chunks counted."""
        return self.completion_tokens if self.completion_tokens is not None else self.chunks


@dataclass
class LoadResult:
    """All samples of one load and its wall time."""

    samples: list[RequestSample]
    wall_s: float
    stopped_by_duration: bool = False

    @property
    def ok(self) -> list[RequestSample]:
        """The requests that completed without error."""
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        """How many requests failed."""
        return len(self.samples) - len(self.ok)

    def tokens_per_s(self) -> float:
        """Completion tokens of successful requests over the load's wall time."""
        return sum(s.tokens for s in self.ok) / self.wall_s if self.wall_s > 0 else 0.0


def _has_content(obj: dict[str, Any]) -> bool:
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or choice.get("text"):
            return True
    return False


def chat_body(spec: LoadSpec, index: int) -> dict[str, Any]:
    """The request body of the index-th request (prompts taken in turn)."""
    prompt = spec.prompts[index % len(spec.prompts)]
    return {
        "model": spec.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": spec.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        **spec.extra_body,
    }


async def one_request(client: httpx.AsyncClient, spec: LoadSpec, index: int) -> RequestSample:
    """Send one streamed chat completion and time its first content chunk and its end."""
    started = time.perf_counter()
    ttft: float | None = None
    chunks = 0
    usage: int | None = None
    try:
        async with client.stream("POST", f"{spec.base_url}/chat/completions", json=chat_body(spec, index)) as reply:
            if reply.status_code != 200:
                await reply.aread()
                return RequestSample(False, None, time.perf_counter() - started, 0, error=f"HTTP {reply.status_code}")
            async for line in reply.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue  # read on to the end of the body, so the connection goes back to the pool
                # Parse only what is needed, so the client's own CPU use stays small beside the servers'.
                if ttft is None or '"completion_tokens"' in data or '"error"' in data:
                    obj = json.loads(data)
                    if "error" in obj:
                        return RequestSample(False, ttft, time.perf_counter() - started, chunks, error="error event")
                    if ttft is None and _has_content(obj):
                        ttft = time.perf_counter() - started
                    if obj.get("usage"):
                        usage = obj["usage"].get("completion_tokens")
                if NON_EMPTY_TEXT.search(data):
                    chunks += 1
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        return RequestSample(False, ttft, time.perf_counter() - started, chunks, error=type(exc).__name__)
    return RequestSample(ttft is not None, ttft, time.perf_counter() - started, chunks, usage,
                         None if ttft is not None else "no content")


async def run_load(spec: LoadSpec) -> LoadResult:
    """Run `spec.streams` workers until `spec.requests` were sent or `spec.max_duration_s` passed."""
    limits = httpx.Limits(max_connections=spec.streams, max_keepalive_connections=spec.streams)
    samples: list[RequestSample] = []
    issued = 0
    started = time.perf_counter()
    deadline = started + spec.max_duration_s

    async with httpx.AsyncClient(limits=limits, timeout=spec.request_timeout_s, headers=spec.headers,
                                 trust_env=False) as client:

        async def worker() -> None:
            nonlocal issued
            while issued < spec.requests and time.perf_counter() < deadline:
                index = issued
                issued += 1
                samples.append(await one_request(client, spec, index))

        tasks = [asyncio.create_task(worker()) for _ in range(spec.streams)]
        _, pending = await asyncio.wait(tasks, timeout=spec.max_duration_s + DRAIN_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    wall = time.perf_counter() - started
    return LoadResult(samples, wall, stopped_by_duration=issued < spec.requests)


async def warm_up(spec: LoadSpec, requests: int = 2) -> LoadResult:
    """A few sequential requests outside any measurement (connections, lazy imports, caches)."""
    from dataclasses import replace

    return await run_load(replace(spec, streams=1, requests=requests, max_duration_s=min(spec.max_duration_s, 60.0)))
