"""From a request to an expert: pick the text to route on, ask the router, map its category to an expert."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, Protocol

import anyio
import anyio.to_thread

from gateway.contention import Contention
from gateway.errors import APIError, model_not_found
from gateway.loop_lag import LoopLag
from gateway.protocol import ChatCompletionRequest, CompletionRequest, ParsedRequest
from gateway.registry import ROUTED_MODEL, ExpertConfig, Registry
from gateway.work_budget import WorkBudget

if TYPE_CHECKING:
    from router_model.query_router import RoutingDecision

RouteReason = Literal["classified", "pinned", "low_confidence", "failover", "session"]
# single: a one-stage router; first: a cascade's fast stage was sure; second: its transformer decided;
# first_busy: the fast stage was unsure but its answer stood, as the second stage gave way to load.
RouterStage = Literal["single", "first", "second", "first_busy"]

# Long pasted text says what it is in its first lines; the embedder reads ~256 tokens anyway.
MAX_ROUTED_CHARS = 2000
# Up to this length a cascade's static stage costs about as much as handing the text to a thread.
INLINE_ROUTING_CHARS = 600


class Router(Protocol):
    """A query router (router_model.QueryRouter or CascadeRouter): one synchronous, CPU-bound call per query."""

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
    ranked: tuple[tuple[str, float], ...] = ()  # every category with its probability, best first
    stage: RouterStage | None = None  # which router stage decided (None: not classified)

    @property
    def routed(self) -> bool:
        """True when the router chose (failover allowed); False when the client pinned an expert."""
        return self.reason != "pinned"


def routing_text(request: ParsedRequest, context_chars: int) -> str:
    """The routing policy: the last user turn, preceded by up to `context_chars` of earlier user turns.

    Earlier turns are taken newest first, so a short follow-up ("and in rust?") keeps its topic.
    System prompts and assistant turns are ignored: they describe the app, not the question.
    """
    if isinstance(request, CompletionRequest):
        return request.prompt_text[:MAX_ROUTED_CHARS]
    if not isinstance(request, ChatCompletionRequest):
        return ""
    user_turns = [turn.text for turn in request.turns if turn.role == "user"]
    if not user_turns:
        return ""
    last = user_turns[-1][:MAX_ROUTED_CHARS]
    context: list[str] = []
    budget = context_chars
    for turn in reversed(user_turns[:-1]):
        if budget <= 0:
            break
        context.append(turn[:budget])
        budget -= len(context[-1])
    return "\n".join([*reversed(context), last])


def _with_cpu_time(route: Callable[[str], RoutingDecision], text: str) -> tuple[RoutingDecision, float]:
    """A routing call and the CPU seconds its thread spent on it (ONNX Runtime runs on the calling thread)."""
    started = time.thread_time()
    decision = route(text)
    return decision, time.thread_time() - started


def forbidden_expert(name: str) -> APIError:
    """A 403 for an API key that may not use this expert."""
    return APIError(403, f"This API key may not use the expert '{name}'.", param="model", code="expert_not_allowed")


class ExpertSelector:
    """Maps a request's `model` to a ExpertChoice using the registry and the router."""

    def __init__(self, registry: Registry, router: Router | None, max_parallel: int | None = None,
                 loop_lag: LoopLag | None = None, budget: WorkBudget | None = None,
                 contention: Contention | None = None) -> None:
        self.registry = registry
        self.router = router
        self._loop_lag = loop_lag
        self._budget = budget
        self._contention = contention
        # More routing threads than cores only makes them contend: queue the rest instead.
        self._limiter = anyio.CapacityLimiter(max_parallel or os.cpu_count() or 1)
        self._fallback = registry.expert(registry.fallback)

    def known_expert(self, model: str) -> ExpertConfig | None:
        """The expert a client pinned, if `model` names one."""
        return self.registry.expert(model)

    def candidates_for(self, ranked: Sequence[tuple[str, float]], first: ExpertConfig) -> tuple[ExpertConfig, ...]:
        """Failover order: the chosen expert, the rest of its category's ranking (the measured table, best
        first), the best experts of the router's next-ranked categories, then the fallback."""
        order = [first]
        if ranked:
            order += [e for e in self.registry.ranked_experts(ranked[0][0]) if e not in order]
        for category, _ in ranked:
            expert = self.registry.expert_for_category(category)
            if expert not in order:
                order.append(expert)
        if self._fallback is not None and self._fallback not in order:
            order.append(self._fallback)
        return tuple(order)

    async def decide(self, request: ParsedRequest, allowed: frozenset[str] | None = None) -> ExpertChoice:
        """Pin, route, or refuse (404, 403) the request's `model`; `allowed` limits the experts (API keys)."""
        model = request.model
        if model != ROUTED_MODEL:
            pinned = self.known_expert(model)
            if pinned is None:
                raise model_not_found(model)
            if allowed is not None and pinned.name not in allowed:
                raise forbidden_expert(pinned.name)
            return ExpertChoice(expert=pinned, reason="pinned", candidates=(pinned,))
        decision = await self._route(request)
        if allowed is None:
            return decision
        candidates = tuple(e for e in decision.candidates if e.name in allowed)
        if not candidates:
            raise forbidden_expert(decision.expert.name)
        return replace(decision, expert=candidates[0], candidates=candidates)

    async def _classify(self, text: str) -> tuple[RoutingDecision, RouterStage]:
        """The router's decision and the stage that made it. A cascade's fast stage runs inline for short texts
        (well under a millisecond, less than a thread hop); its second stage runs in a worker thread, and only
        while one is free, the event loop keeps time, the cores are not contended and the second stage's CPU
        budget allows: otherwise the fast stage's answer stands (`first_busy`), so routing never queues behind
        itself nor takes the CPU that the streams in flight need."""
        assert self.router is not None
        first = getattr(self.router, "route_first", None)
        if first is None:
            return await anyio.to_thread.run_sync(self.router.route, text, limiter=self._limiter), "single"
        if len(text) <= INLINE_ROUTING_CHARS:
            decision, sure = first(text)
        else:
            decision, sure = await anyio.to_thread.run_sync(first, text, limiter=self._limiter)
        if sure:
            return decision, "first"
        no_thread = self._limiter.borrowed_tokens >= self._limiter.total_tokens
        busy = self._loop_lag is not None and self._loop_lag.busy
        contended = self._contention is not None and self._contention.high
        if no_thread or busy or contended or (self._budget is not None and not self._budget.available):
            return decision, "first_busy"
        started = time.perf_counter()
        second, cpu_s = await anyio.to_thread.run_sync(
            _with_cpu_time, self.router.route_second, text, limiter=self._limiter  # type: ignore[attr-defined]
        )
        if self._contention is not None:
            self._contention.observe(time.perf_counter() - started, cpu_s)
        if self._budget is not None:
            self._budget.spend(cpu_s)
        return second, "second"

    async def _route(self, request: ParsedRequest) -> ExpertChoice:
        """Route the request's text and map the category to an expert."""
        assert self._fallback is not None
        text = routing_text(request, self.registry.router.context_chars)
        if self.router is None or not text.strip():
            return ExpertChoice(
                expert=self._fallback,
                reason="low_confidence",
                confidence=0.0,
                candidates=self.candidates_for((), self._fallback),
            )
        started = time.perf_counter()
        result, stage = await self._classify(text)
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
            ranked=tuple(result.ranked),
            stage=stage,
        )
