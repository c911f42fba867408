"""The privacy guard on a parsed request: before routing and before the prompt leaves, large texts off the loop."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread

from gateway.privacy.guard import GuardResult, Policy, PrivacyGuard
from gateway.protocol import ChatCompletionRequest, CompletionRequest, ParsedRequest, prompt_text_of, turns_of

R = TypeVar("R", bound=ParsedRequest)


def _flattened(items: list[Any]) -> list[Any]:
    """Messages, with the conversations of a batch request (lists of messages) opened up."""
    return [m for item in items for m in (item if isinstance(item, list) else (item,))]


def text_size(payload: dict[str, Any]) -> int:
    """About how many characters the guard will scan (message contents, text parts, prompts)."""
    size = 0
    for key in ("messages", "input", "system"):
        items = payload.get(key)
        if isinstance(items, str):
            size += len(items)
        for item in _flattened(items) if isinstance(items, list) else ():
            content = item.get("content", item.get("text")) if isinstance(item, dict) else None
            if isinstance(content, str):
                size += len(content)
            elif isinstance(content, list):
                size += sum(len(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    if isinstance(payload.get("instructions"), str):
        size += len(payload["instructions"])
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        size += len(prompt)
    elif isinstance(prompt, list):
        size += sum(len(p) for p in prompt if isinstance(p, str))
    return size


def with_payload(parsed: R, payload: dict[str, Any]) -> R:
    """The same request carrying a rewritten body, its routing text read again from that body."""
    if isinstance(parsed, ChatCompletionRequest):
        return dataclasses.replace(parsed, payload=payload, turns=turns_of(payload))
    if isinstance(parsed, CompletionRequest):
        return dataclasses.replace(parsed, payload=payload, prompt_text=prompt_text_of(payload))
    return dataclasses.replace(parsed, payload=payload)


class RequestGuard:
    """Applies a policy to a request; texts past `thread_chars` are scanned in a worker thread.

    Measured: about 0.4 microseconds per character, so the default 2,000 keeps work on the event loop under
    about a millisecond.
    """

    def __init__(self, guard: PrivacyGuard | None = None, thread_chars: int = 2000) -> None:
        self._guard = guard or PrivacyGuard()
        self._thread_chars = thread_chars

    async def apply(self, parsed: R, policy: Policy) -> tuple[R, dict[str, int]]:
        """The request to route and send (rewritten only if something was redacted), and the kinds found.

        `block` raises a 400 naming the kinds found.
        """
        scan = partial(self._guard.apply, parsed.payload, policy)
        result: GuardResult
        if text_size(parsed.payload) > self._thread_chars:
            result = await anyio.to_thread.run_sync(scan)
        else:
            result = scan()
        if not result.changed:
            return parsed, result.findings
        return with_payload(parsed, result.payload), result.findings
