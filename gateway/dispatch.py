"""Sending a request to an expert: failover before the first byte (replicas, then experts), within caps and budget."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from gateway.accounting import RequestRecord
from gateway.engine_client import EngineClient
from gateway.errors import APIError
from gateway.health import HealthBoard
from gateway.limits import ExpertLimiter, RetryBudget
from gateway.metrics import GatewayMetrics
from gateway.protocol import ParsedRequest
from gateway.registry import ExpertConfig, Replica
from gateway.replicas import ReplicaState
from gateway.routing import ExpertChoice
from gateway.settings import Settings
from gateway.upstream import Opened, Timeouts, UpstreamFailure, open_upstream, unreachable


@dataclass
class Dispatched:
    """The expert and replica that took the request, its open response, the timeouts, and why it was chosen."""

    expert: ExpertConfig
    opened: Opened
    timeouts: Timeouts
    reason: str
    replica: Replica
    attempt: AsyncExitStack  # its slot, replica and response; closing it early frees them (a resume)


def upstream_body(request: ParsedRequest, expert: ExpertConfig, stream_usage: bool = True) -> bytes:
    """The client's body with `model` naming the engine's model; chat and completion streams always ask for the
    usage chunk (`stream_usage`; the typed-event APIs report usage in their last events anyway)."""
    upstream = {**request.payload, "model": expert.model}
    if request.stream and stream_usage:
        # Always ask for usage so tokens are counted exactly; the chunk is dropped if the client did not ask.
        upstream["stream_options"] = {**(request.payload.get("stream_options") or {}), "include_usage": True}
    return json.dumps(upstream, separators=(",", ":"), ensure_ascii=False).encode()


class Dispatcher:
    """Tries the choice's candidates in order until one engine starts answering."""

    def __init__(
        self,
        settings: Settings,
        client: EngineClient,
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

    def _count_failure(self, expert: ExpertConfig, failure: UpstreamFailure, state: ReplicaState) -> None:
        outcome = "rejected" if failure.kind == "rejected" else "failed"
        self.metrics.replica_attempts.labels(expert.name, state.label, outcome).inc()
        if failure.kind == "rejected":
            # The engine refused the request itself (a 4xx): the client's mistake, not an expert fault.
            self.metrics.engine_rejections.labels(expert.name, str(failure.error.status)).inc()
            return
        self.metrics.upstream_errors.labels(expert.name, failure.kind).inc()
        if failure.retryable:
            self.health.failure(expert.name, failure.kind, state.index)

    async def dispatch(
        self, choice: ExpertChoice, request: ParsedRequest, path: str, record: RequestRecord,
        resources: AsyncExitStack, request_id: str, on_root: bool = False, stream_usage: bool = True,
        content_type: str = "application/json",
    ) -> Dispatched:
        """Open the first candidate that answers; the slot and response are released by `resources`.

        `content_type` is the client's own: the engine judges it (vLLM refuses all but JSON, in its words)."""
        self.budget.request()
        headers = {"content-type": content_type, "x-request-id": request_id}
        return await self.open_first(
            self.usable(choice), lambda expert: upstream_body(request, expert, stream_usage), path, headers, record,
            resources,
            choice.reason, may_change_expert=choice.routed, on_root=on_root,
        )

    async def open_first(
        self, candidates: list[ExpertConfig], body_for: Callable[[ExpertConfig], bytes], path: str,
        headers: dict[str, str], record: RequestRecord, resources: AsyncExitStack, reason: str,
        may_change_expert: bool, on_root: bool = False, tried: dict[str, set[int]] | None = None,
    ) -> Dispatched:
        """Try the candidates in order (each one's replicas first) until one engine starts answering.

        `tried` names replicas not to use again (a resumed stream's broken one); it is updated in place.
        """
        tried = {} if tried is None else tried
        for position, expert in enumerate(candidates):
            try:
                state, opened, attempt, timeouts = await self._open_on_expert(
                    expert, body_for(expert), path, headers, record, tried.setdefault(expert.name, set()), on_root
                )
            except UpstreamFailure as failure:
                last = position == len(candidates) - 1
                if not (may_change_expert and failure.retryable and not last and self.budget.try_spend()):
                    record.error_kind = failure.kind
                    raise failure.error from failure
                self.metrics.fallbacks.labels(expert.name, candidates[position + 1].name, failure.kind).inc()
                reason = record.reason = "failover"
                continue
            resources.push_async_exit(attempt)
            return Dispatched(expert, opened, timeouts, reason, state.replica, attempt)
        raise AssertionError("no candidate experts")  # usable() never returns an empty list

    async def _open_on_expert(
        self, expert: ExpertConfig, body: bytes, path: str, headers: dict[str, str], record: RequestRecord,
        tried: set[int], on_root: bool,
    ) -> tuple[ReplicaState, Opened, AsyncExitStack, Timeouts]:
        """Within the expert's slot, try its replicas (fewest in flight first) until one answers."""
        attempt = AsyncExitStack()
        try:
            await attempt.enter_async_context(self.limiters[expert.name].slot())
        except APIError as exc:
            await attempt.aclose()
            raise UpstreamFailure("overloaded", exc, True) from exc
        pool = self.health.pool(expert.name)
        timeouts = Timeouts.for_expert(self.settings, expert)
        try:
            record.enter_expert(expert.name)
            while (state := pool.pick(tried)) is not None:
                tried.add(state.index)
                record.replica = state.label
                base = state.replica.root_url if on_root else state.replica.url
                pool.acquire(state)
                try:
                    opened = await open_upstream(self.client, expert, base + path, body, headers, timeouts)
                except UpstreamFailure as failure:
                    pool.release(state)
                    self._count_failure(expert, failure, state)
                    if failure.retryable and pool.has_other(tried) and self.budget.try_spend():
                        continue  # another replica of the same expert first
                    raise
                except BaseException:
                    pool.release(state)
                    raise
                attempt.callback(pool.release, state)
                self.metrics.replica_attempts.labels(expert.name, state.label, "ok").inc()
                self.health.success(expert.name, state.index)
                return state, opened, attempt, timeouts
            raise unreachable(expert.name, "no_replica", "no replica left to try")
        except BaseException:
            await attempt.aclose()
            raise
