"""From a request to an expert: pick the text to classify, ask the router, map its category to an expert."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio
import anyio.to_thread

from gateway.errors import APIError, model_not_found
from gateway.registry import ROUTED_MODEL, ExpertConfig, Registry

if TYPE_CHECKING:
    from router_model.query_router import RoutingDecision

RouteReason = Literal["classified", "pinned", "low_confidence", "failover"]

# Long pasted text says what it is in its first lines; the embedder reads ~256 tokens anyway.
MAX_CLASSIFIED_CHARS = 2000


class Router(Protocol):
    """A query router (router_model.QueryRouter): one synchronous, CPU-bound call per query."""

    @property
    def categories(self) -> tuple[str, ...]: ...

    def route(self, text: str) -> RoutingDecision: ...


@dataclass(frozen=True)
class ExpertChoice:
    """Which expert answers a request, and why; `candidates` is the failover order (the chosen expert first)."""

    expert: ExpertConfig
    reason: RouteReason
    category: str | None = None
    confidence: float | None = None
    alternatives: tuple[tuple[str, float], ...] = ()
    candidates: tuple[ExpertConfig, ...] = field(default=())
    seconds: float = 0.0

    @property
    def routed(self) -> bool:
        """True when the router chose (failover allowed); False when the client pinned an expert."""
        return self.reason != "pinned"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def text_to_classify(payload: dict[str, Any], context_chars: int) -> str:
    """The routing policy: the last user turn, preceded by up to `context_chars` of earlier user turns.

    Earlier turns are taken newest first, so a short follow-up ("and in rust?") keeps its topic.
    System prompts and assistant turns are ignored: they describe the app, not the question.
    """
    if "messages" not in payload:
        prompt = payload.get("prompt")
        if isinstance(prompt, list):
            prompt = prompt[0] if prompt and isinstance(prompt[0], str) else ""
        return (prompt if isinstance(prompt, str) else "")[:MAX_CLASSIFIED_CHARS]
    user_turns = [_text_of(m.get("content")) for m in payload["messages"] if m.get("role") == "user"]
    if not user_turns:
        return ""
    last = user_turns[-1][:MAX_CLASSIFIED_CHARS]
    context: list[str] = []
    budget = context_chars
    for turn in reversed(user_turns[:-1]):
        if budget <= 0:
            break
        context.append(turn[:budget])
        budget -= len(context[-1])
    return "\n".join([*reversed(context), last])


def forbidden_expert(name: str) -> APIError:
    """A 403 for an API key that may not use this expert."""
    return APIError(403, f"This API key may not use the expert '{name}'.", param="model", code="expert_not_allowed")


class ExpertSelector:
    """Maps a request's `model` to a ExpertChoice using the registry and the router."""

    def __init__(self, registry: Registry, router: Router | None, max_parallel: int | None = None) -> None:
        self.registry = registry
        self.router = router
        # More routing threads than cores only makes them contend: queue the rest instead.
        self._limiter = anyio.CapacityLimiter(max_parallel or os.cpu_count() or 1)
        self._fallback = registry.expert(registry.fallback)

    def known_expert(self, model: str) -> ExpertConfig | None:
        """The expert a client pinned, if `model` names one."""
        return self.registry.expert(model)

    def candidates_for(self, ranked: Sequence[tuple[str, float]], first: ExpertConfig) -> tuple[ExpertConfig, ...]:
        """Failover order: the chosen expert, the router's next-ranked experts, then the fallback."""
        order = [first]
        for category, _ in ranked:
            expert = self.registry.expert_for_category(category)
            if expert not in order:
                order.append(expert)
        if self._fallback is not None and self._fallback not in order:
            order.append(self._fallback)
        return tuple(order)

    async def decide(self, payload: dict[str, Any], allowed: frozenset[str] | None = None) -> ExpertChoice:
        """Pin, route, or refuse (404, 403) the request's `model`; `allowed` limits the experts (API keys)."""
        model = payload.get("model")
        assert isinstance(model, str)
        if model != ROUTED_MODEL:
            pinned = self.known_expert(model)
            if pinned is None:
                raise model_not_found(model)
            if allowed is not None and pinned.name not in allowed:
                raise forbidden_expert(pinned.name)
            return ExpertChoice(expert=pinned, reason="pinned", candidates=(pinned,))
        decision = await self._route(payload)
        if allowed is None:
            return decision
        candidates = tuple(e for e in decision.candidates if e.name in allowed)
        if not candidates:
            raise forbidden_expert(decision.expert.name)
        return replace(decision, expert=candidates[0], candidates=candidates)

    async def _route(self, payload: dict[str, Any]) -> ExpertChoice:
        """Classify the request's text and map the category to an expert."""
        assert self._fallback is not None
        text = text_to_classify(payload, self.registry.router.context_chars)
        if self.router is None or not text.strip():
            return ExpertChoice(
                expert=self._fallback,
                reason="low_confidence",
                confidence=0.0,
                candidates=self.candidates_for((), self._fallback),
            )
        started = time.perf_counter()
        result = await anyio.to_thread.run_sync(self.router.route, text, limiter=self._limiter)
        seconds = time.perf_counter() - started
        alternatives = tuple(result.ranked[1:4])
        if result.confidence < self.registry.router.min_confidence:
            expert, reason = self._fallback, "low_confidence"
        else:
            expert, reason = self.registry.expert_for_category(result.category), "classified"
        return ExpertChoice(
            expert=expert,
            reason=reason,  # type: ignore[arg-type]
            category=result.category,
            confidence=result.confidence,
            alternatives=alternatives,
            candidates=self.candidates_for(result.ranked, expert),
            seconds=seconds,
        )
