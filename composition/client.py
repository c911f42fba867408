"""Talking to one expert's engine: a greedy answer, and the mean log-prob of the reference (vLLM)."""

from __future__ import annotations

from typing import Any

import httpx

from composition.data import EvalItem
from gateway.registry import ExpertConfig

# Enough for a letter, a short span, a worked GSM8K solution or one function, on a slow CPU engine.
MAX_TOKENS = {"choice": 16, "short": 48, "numeric": 200, "code_tests": 256, "free": 0}
MAX_REFERENCE_TOKENS = 256


class EngineError(RuntimeError):
    """An engine answered with an error or an unexpected shape."""


def _checked(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise EngineError(f"{response.request.url}: HTTP {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


async def generate(client: httpx.AsyncClient, expert: ExpertConfig, item: EvalItem) -> str:
    """The expert's greedy answer to the item's prompt ('' for kinds with no exact score)."""
    max_tokens = MAX_TOKENS[item.kind]
    if max_tokens == 0:
        return ""
    body = _checked(
        await client.post(
            f"{expert.base_url}/chat/completions",
            json={
                "model": expert.model,
                "messages": [{"role": "user", "content": item.prompt}],
                "max_tokens": max_tokens,
                "temperature": 0.0,
            },
        )
    )
    return str(body["choices"][0]["message"].get("content") or "")


async def _tokenize(client: httpx.AsyncClient, expert: ExpertConfig, payload: dict[str, Any]) -> list[int]:
    body = _checked(await client.post(f"{expert.root_url}/tokenize", json={"model": expert.model, **payload}))
    return [int(t) for t in body["tokens"]]


async def reference_logprob(client: httpx.AsyncClient, expert: ExpertConfig, item: EvalItem) -> tuple[float, int]:
    """Mean log-prob of the reference's tokens after the chat-templated prompt, and how many were scored.

    The prompt is templated by the engine itself (`/tokenize` with messages and the generation prompt), the
    reference is tokenised on its own and appended, and `/v1/completions` scores the ids with `echo` and
    `prompt_logprobs`, generating one token that is thrown away.
    """
    head = await _tokenize(
        client, expert, {"messages": [{"role": "user", "content": item.prompt}], "add_generation_prompt": True}
    )
    reference = (await _tokenize(client, expert, {"prompt": item.reference, "add_special_tokens": False}))[
        :MAX_REFERENCE_TOKENS
    ]
    if not reference:
        raise EngineError(f"{item.id}: empty reference")
    body = _checked(
        await client.post(
            f"{expert.base_url}/completions",
            json={
                "model": expert.model,
                "prompt": head + reference,
                "max_tokens": 1,
                "temperature": 0.0,
                "prompt_logprobs": 0,
            },
        )
    )
    entries = body["choices"][0].get("prompt_logprobs") or body.get("prompt_logprobs")
    if not entries or len(entries) < len(head) + len(reference):
        raise EngineError(f"{expert.name}: no prompt_logprobs in the completion for {item.id}")
    values = []
    for position, token in zip(range(len(head), len(head) + len(reference)), reference, strict=True):
        entry = entries[position] or {}
        scored = entry.get(str(token)) or entry.get(token)
        if scored is None:
            raise EngineError(f"{expert.name}: token {token} missing from prompt_logprobs at {position}")
        values.append(float(scored["logprob"]))
    return sum(values) / len(values), len(values)
