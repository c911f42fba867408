"""One completion request, end to end: read, validate, route, dispatch with failover, answer or stream."""

from __future__ import annotations

import json
import re
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response

from gateway.accounting import RequestRecord
from gateway.errors import APIError, upstream_error
from gateway.health import HealthBoard
from gateway.limits import ExpertLimiter, RetryBudget
from gateway.metrics import GatewayMetrics
from gateway.protocol import SamplingParams, parse_json_body, validate_request
from gateway.registry import ExpertConfig
from gateway.relay import ActiveStreams, RelayResponse
from gateway.routing import ExpertChoice, ExpertSelector
from gateway.settings import Settings
from gateway.sse import ModelRewriter, StreamTap
from gateway.upstream import Opened, Timeouts, UpstreamFailure, open_upstream

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(request: Request) -> str:
    """The client's `x-request-id` when it is a sane token, else a new one."""
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) past `limit` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"The request body is larger than {limit} bytes.", code="request_too_large")
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise APIError(413, f"The request body is larger than {limit} bytes.", code="request_too_large")
    return bytes(received)


def decision_headers(decision: ExpertChoice, expert: ExpertConfig, reason: str, request_id: str) -> dict[str, str]:
    """The routing decision, visible to the client."""
    headers = {"x-coe-expert": expert.name, "x-coe-route-reason": reason, "x-request-id": request_id}
    if decision.category is not None:
        headers["x-coe-category"] = decision.category
    if decision.confidence is not None:
        headers["x-coe-confidence"] = f"{decision.confidence:.4f}"
    if decision.alternatives:
        headers["x-coe-alternatives"] = ",".join(f"{c}={p:.4f}" for c, p in decision.alternatives)
    return headers


@dataclass
class Dispatched:
    """The expert that took the request, its open response, and why it was chosen."""

    expert: ExpertConfig
    opened: Opened
    reason: str


class CompletionService:
    """Everything a completion request needs, injected once per app."""

    def __init__(
        self,
        settings: Settings,
        selector: ExpertSelector,
        client: httpx.AsyncClient,
        metrics: GatewayMetrics,
        health: HealthBoard,
        limiters: dict[str, ExpertLimiter],
        budget: RetryBudget,
        streams: ActiveStreams,
    ) -> None:
        self.settings = settings
        self.selector = selector
        self.client = client
        self.metrics = metrics
        self.health = health
        self.limiters = limiters
        self.budget = budget
        self.streams = streams

    async def handle(
        self, request: Request, endpoint: str, schema: type[SamplingParams], path: str,
        allowed: frozenset[str] | None = None,
    ) -> Response:
        """Answer one request; every outcome closes its record exactly once."""
        request_id = request_id_of(request)
        record = RequestRecord(self.metrics, request_id, endpoint)
        resources = AsyncExitStack()
        try:
            body = await read_body(request, self.settings.max_body_bytes)
            payload = parse_json_body(body)
            validate_request(schema, payload)
            decision = await self.selector.decide(payload, allowed)
            self._record_decision(record, decision)
            stream = payload.get("stream") is True
            record.stream = stream
            dispatched = await self._dispatch(decision, record, resources, payload, path, stream, request_id)
            headers = decision_headers(decision, dispatched.expert, dispatched.reason, request_id)
            record.reason = dispatched.reason
            if stream:
                timeouts = Timeouts.for_expert(self.settings, dispatched.expert)
                tap = StreamTap(dispatched.expert.name, dispatched.expert.model, keep_usage=_wants_usage(payload))
                return RelayResponse(
                    dispatched.opened, tap, record, resources, headers, timeouts.idle, timeouts.total, self.streams
                )
            return await self._whole_answer(dispatched, record, resources, headers)
        except APIError as error:
            with anyio.CancelScope(shield=True):
                await resources.aclose()
            record.error_kind = record.error_kind or error.code
            record.close(error.status)
            return error.response({"x-request-id": request_id})
        except Exception:
            with anyio.CancelScope(shield=True):
                await resources.aclose()
            record.error_kind = "internal"
            record.close(500)
            raise
        except BaseException:  # cancelled: the client left while we routed or waited for the engine
            with anyio.CancelScope(shield=True):
                await resources.aclose()
            record.disconnected = True
            record.close(499)
            raise

    def _record_decision(self, record: RequestRecord, decision: ExpertChoice) -> None:
        record.category, record.confidence, record.reason = decision.category, decision.confidence, decision.reason
        if decision.routed:
            m = self.metrics
            m.routing_decisions.labels(decision.category or "none", decision.expert.name, decision.reason).inc()
            if decision.category is not None:
                m.routing_duration.observe(decision.seconds)
                m.router_confidence.observe(decision.confidence or 0.0)

    def _upstream_body(self, payload: dict[str, Any], expert: ExpertConfig, stream: bool) -> bytes:
        upstream = {**payload, "model": expert.model}
        if stream:
            # Always ask for usage so tokens are counted exactly; the chunk is dropped if the client did not ask.
            upstream["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
        return json.dumps(upstream, separators=(",", ":"), ensure_ascii=False).encode()

    def _usable(self, decision: ExpertChoice) -> list[ExpertConfig]:
        """Failover candidates whose breaker lets requests through (pinned: only the pinned one)."""
        if not decision.routed:
            return [decision.expert]
        up = [e for e in decision.candidates if self.health.is_up(e.name)]
        return up or [decision.expert]  # all down: try the chosen one anyway rather than refuse blindly

    async def _dispatch(
        self, decision: ExpertChoice, record: RequestRecord, resources: AsyncExitStack,
        payload: dict[str, Any], path: str, stream: bool, request_id: str,
    ) -> Dispatched:
        self.budget.request()
        candidates = self._usable(decision)
        reason: str = decision.reason
        headers = {"content-type": "application/json", "x-request-id": request_id}
        for index, expert in enumerate(candidates):
            attempt = AsyncExitStack()
            try:
                await attempt.enter_async_context(self.limiters[expert.name].slot())
                record.enter_expert(expert.name)
                opened = await open_upstream(
                    self.client, expert, path, self._upstream_body(payload, expert, stream), headers,
                    Timeouts.for_expert(self.settings, expert),
                )
            except (UpstreamFailure, APIError) as exc:
                await attempt.aclose()
                failure = exc if isinstance(exc, UpstreamFailure) else UpstreamFailure("overloaded", exc, True)
                if failure.kind != "overloaded":
                    self.metrics.upstream_errors.labels(expert.name, failure.kind).inc()
                    if failure.retryable:
                        self.health.failure(expert.name, failure.kind)
                last = index == len(candidates) - 1
                if not (decision.routed and failure.retryable and not last and self.budget.try_spend()):
                    record.error_kind = failure.kind
                    raise failure.error from exc
                self.metrics.fallbacks.labels(expert.name, candidates[index + 1].name, failure.kind).inc()
                reason = "failover"
                continue
            except BaseException:
                await attempt.aclose()
                raise
            resources.push_async_exit(attempt)
            self.health.success(expert.name)
            return Dispatched(expert, opened, reason)
        raise AssertionError("no candidate experts")  # _usable never returns an empty list

    async def _whole_answer(
        self, dispatched: Dispatched, record: RequestRecord, resources: AsyncExitStack, headers: dict[str, str]
    ) -> Response:
        """A non-streamed answer: read it whole, rewrite `model`, count usage."""
        expert, opened = dispatched.expert, dispatched.opened
        timeouts = Timeouts.for_expert(self.settings, expert)
        try:
            with anyio.fail_after(timeouts.total):
                body = opened.head + b"".join([chunk async for chunk in opened.chunks])
        except (TimeoutError, httpx.HTTPError) as exc:
            self.metrics.upstream_errors.labels(expert.name, "read").inc()
            raise APIError(502, f"The expert '{expert.name}' broke off its answer.", code="upstream_reset") from exc
        finally:
            with anyio.CancelScope(shield=True):
                await opened.response.aclose()
                await resources.aclose()
        try:
            answer = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            answer = None
        if not isinstance(answer, dict):
            self.metrics.upstream_errors.labels(expert.name, "malformed").inc()
            raise upstream_error(502, body, opened.response.headers.get("content-type", ""))
        record.usage(answer.get("usage"))
        rewritten = ModelRewriter(expert.model, expert.name).rewrite(body, answer, sse=False)
        record.close(200)
        return Response(rewritten, media_type="application/json", headers=headers)


def _wants_usage(payload: dict[str, Any]) -> bool:
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True
