"""Sending a request to an expert: the failover loop before the first byte, within caps and the retry budget."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx

from gateway.accounting import RequestRecord
from gateway.errors import APIError
from gateway.health import HealthBoard
from gateway.limits import ExpertLimiter, RetryBudget
from gateway.metrics import GatewayMetrics
from gateway.protocol import ParsedRequest
from gateway.registry import ExpertConfig
from gateway.routing import ExpertChoice
from gateway.settings import Settings
from gateway.upstream import Opened, Timeouts, UpstreamFailure, open_upstream


@dataclass
class Dispatched:
    """The expert that took the request, its open response, the timeouts that apply, and why it was chosen."""

    expert: ExpertConfig
    opened: Opened
    timeouts: Timeouts
    reason: str


def upstream_body(request: ParsedRequest, expert: ExpertConfig) -> bytes:
    """The client's body with `model` naming the engine's model; streams always ask for the usage chunk."""
    upstream = {**request.payload, "model": expert.model}
    if request.stream:
        # Always ask for usage so tokens are counted exactly; the chunk is dropped if the client did not ask.
        upstream["stream_options"] = {**(request.payload.get("stream_options") or {}), "include_usage": True}
    return json.dumps(upstream, separators=(",", ":"), ensure_ascii=False).encode()


class Dispatcher:
    """Tries the choice's candidates in order until one engine starts answering."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        metrics: GatewayMetrics,
        health: HealthBoard,
        limiters: dict[str, ExpertLimiter],
        budget: RetryBudget,
    ) -> None:
        self.settings = settings
        self.client = client
        self.metrics = metrics
        self.health = health
        self.limiters = limiters
        self.budget = budget

    def usable(self, choice: ExpertChoice) -> list[ExpertConfig]:
        """Failover candidates whose breaker lets requests through (pinned: only the pinned one)."""
        if not choice.routed:
            return [choice.expert]
        up = [e for e in choice.candidates if self.health.is_up(e.name)]
        return up or [choice.expert]  # all down: try the chosen one anyway rather than refuse blindly

    def _count_failure(self, expert: ExpertConfig, failure: UpstreamFailure) -> None:
        if failure.kind == "overloaded":
            return  # our own cap, not the engine's fault
        if failure.kind == "rejected":
            # The engine refused the request itself (a 4xx): the client's mistake, not an expert fault.
            self.metrics.engine_rejections.labels(expert.name, str(failure.error.status)).inc()
            return
        self.metrics.upstream_errors.labels(expert.name, failure.kind).inc()
        if failure.retryable:
            self.health.failure(expert.name, failure.kind)

    async def dispatch(
        self, choice: ExpertChoice, request: ParsedRequest, path: str, record: RequestRecord,
        resources: AsyncExitStack, request_id: str, on_root: bool = False,
    ) -> Dispatched:
        """Open the first candidate that answers; the slot and response are released by `resources`."""
        self.budget.request()
        candidates = self.usable(choice)
        reason: str = choice.reason
        headers = {"content-type": "application/json", "x-request-id": request_id}
        for index, expert in enumerate(candidates):
            attempt = AsyncExitStack()
            timeouts = Timeouts.for_expert(self.settings, expert)
            try:
                await attempt.enter_async_context(self.limiters[expert.name].slot())
                record.enter_expert(expert.name)
                base = expert.root_url if on_root else expert.url
                opened = await open_upstream(
                    self.client, expert, base + path, upstream_body(request, expert), headers, timeouts
                )
            except (UpstreamFailure, APIError) as exc:
                await attempt.aclose()
                failure = exc if isinstance(exc, UpstreamFailure) else UpstreamFailure("overloaded", exc, True)
                self._count_failure(expert, failure)
                last = index == len(candidates) - 1
                if not (choice.routed and failure.retryable and not last and self.budget.try_spend()):
                    record.error_kind = failure.kind
                    raise failure.error from exc
                self.metrics.fallbacks.labels(expert.name, candidates[index + 1].name, failure.kind).inc()
                reason = record.reason = "failover"
                continue
            except BaseException:
                await attempt.aclose()
                raise
            resources.push_async_exit(attempt)
            self.health.success(expert.name)
            return Dispatched(expert, opened, timeouts, reason)
        raise AssertionError("no candidate experts")  # usable() never returns an empty list
