"""Finishing an answer whose engine broke: continue a stream on another replica (or expert), retry a whole answer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx

from gateway.accounting import RequestRecord
from gateway.continuation import resume_blocker
from gateway.dispatch import Dispatched, Dispatcher, upstream_body
from gateway.errors import APIError
from gateway.health import HealthBoard
from gateway.metrics import GatewayMetrics
from gateway.protocol import ParsedRequest
from gateway.registry import ExpertConfig, Registry
from gateway.resume_stream import ResumingStream
from gateway.routing import ExpertChoice
from gateway.upstream import Opened


class Resumer:
    """Decides whether a stream may be resumed, and builds the resuming byte stream."""

    def __init__(
        self, registry: Registry, dispatcher: Dispatcher, health: HealthBoard, metrics: GatewayMetrics,
    ) -> None:
        self.registry = registry
        self.dispatcher = dispatcher
        self.health = health
        self.metrics = metrics

    def enabled_for(self, expert: ExpertConfig, request: ParsedRequest) -> bool:
        """Whether the registry allows resuming this expert's answers and the request can be continued."""
        return self.registry.resumes(expert) and (not request.stream or resume_blocker(request) is None)

    def candidates(self, choice: ExpertChoice, expert: ExpertConfig) -> list[ExpertConfig]:
        """Where an answer of `expert` may continue: its own replicas, then (routed, if allowed) the next experts."""
        if not (choice.routed and self.registry.resume.across_experts) or expert not in choice.candidates:
            return [expert]
        after = list(choice.candidates)[list(choice.candidates).index(expert):]
        return [after[0], *(e for e in after[1:] if self.health.is_up(e.name))]

    def stream(
        self, first: Dispatched, choice: ExpertChoice, request: ParsedRequest, path: str,
        record: RequestRecord, resources: AsyncExitStack,
    ) -> Opened:
        """An `Opened` whose chunks continue on another engine when the first one breaks mid-answer."""
        resuming = ResumingStream(self, first, choice, request, path, record, resources)
        return Opened(first.opened.response, resuming.chunks(), b"")

    async def retry(
        self, broken: Dispatched, choice: ExpertChoice, request: ParsedRequest, path: str,
        record: RequestRecord, resources: AsyncExitStack, tried: dict[str, set[int]], reason: str,
    ) -> Dispatched | None:
        """A new attempt elsewhere for a broken one, within the per-request maximum and the retry budget."""
        expert = broken.expert
        self.metrics.upstream_errors.labels(expert.name, reason).inc()
        self.health.failure(expert.name, reason, broken.replica.index)
        if len(record.resumes) >= self.registry.resume.max_resumes or not self.dispatcher.budget.try_spend():
            return None
        tried.setdefault(expert.name, set()).add(broken.replica.index)
        headers = {"content-type": "application/json", "x-request-id": record.request_id}
        with anyio.CancelScope(shield=True):
            await broken.attempt.aclose()  # free the broken replica's slot and lease before asking another
            await broken.opened.response.aclose()
        error_kind = record.error_kind
        try:
            again = await self.dispatcher.open_first(
                self.candidates(choice, expert), lambda e: upstream_body(request, e), path, headers, record,
                resources, broken.reason, may_change_expert=len(self.candidates(choice, expert)) > 1, tried=tried,
            )
        except APIError:
            return None
        finally:
            record.error_kind = error_kind
        resources.push_async_callback(again.opened.response.aclose)
        self.metrics.resumes.labels(expert.name, reason).inc()
        record.resumes.append(reason)
        return again


Again = Callable[[Dispatched, str], Awaitable[Dispatched | None]]


async def read_answer(first: Dispatched, deadline: float, again: Again | None) -> tuple[Dispatched, bytes, Any]:
    """Read a whole answer before the deadline; a reset or malformed one is asked again elsewhere if `again` may.

    Nothing has reached the client yet, so the new attempt starts from the beginning (a plain retry).
    """
    dispatched = first
    while True:
        opened = dispatched.opened
        try:
            with anyio.fail_after(max(deadline - anyio.current_time(), 0)):
                body = opened.head + b"".join([chunk async for chunk in opened.chunks])
        except httpx.HTTPError:
            if again is not None and (retried := await again(dispatched, "reset")) is not None:
                dispatched = retried
                continue
            raise
        try:
            answer = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            answer = None
        if not isinstance(answer, dict) and again is not None:
            if (retried := await again(dispatched, "malformed")) is not None:
                dispatched = retried
                continue
        return dispatched, body, answer
