"""Completion requests end to end: read and parse once, route, dispatch, then relay the stream or the answer."""

from __future__ import annotations

import re
import uuid
from contextlib import AsyncExitStack

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response

from gateway.access import Access
from gateway.accounting import RequestRecord
from gateway.dispatch import Dispatched, Dispatcher
from gateway.endpoints import (
    CHAT,
    CHAT_BATCH,
    COMPLETIONS,
    CONVERSATIONS,
    COUNT_TOKENS,
    DETOKENIZE,
    MESSAGES,
    RESPONSES,
    TOKENIZE,
    Endpoint,
    R,
)
from gateway.errors import APIError, upstream_error
from gateway.event_tap import EventTap
from gateway.identity import Principal
from gateway.metrics import GatewayMetrics
from gateway.relay import ActiveStreams, RelayResponse
from gateway.resume import Again, Resumer, read_answer
from gateway.routing import ExpertChoice, ExpertSelector
from gateway.sessions import SessionRouter, session_key
from gateway.settings import Settings
from gateway.sse import ModelRewriter, StreamTap, answer_text

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_REQUEST_ID_KEY = "coe.request_id"


def request_id_of(request: Request) -> str:
    """The client's `x-request-id` when it is a sane token, else a new one; the same for the whole request
    (authentication asks first, the service again)."""
    known: str | None = request.scope.get(_REQUEST_ID_KEY)
    if known is None:
        given = request.headers.get("x-request-id", "")
        known = request.scope[_REQUEST_ID_KEY] = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    return known


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


def decision_headers(choice: ExpertChoice, dispatched: Dispatched, request_id: str) -> dict[str, str]:
    """The routing decision, visible to the client."""
    headers = {"x-coe-expert": dispatched.expert.name, "x-coe-route-reason": dispatched.reason,
               "x-request-id": request_id}
    if choice.category is not None:
        headers["x-coe-category"] = choice.category
    if choice.confidence is not None:
        headers["x-coe-confidence"] = f"{choice.confidence:.4f}"
    if choice.alternatives:
        headers["x-coe-alternatives"] = ",".join(f"{c}={p:.4f}" for c, p in choice.alternatives)
    return headers


class CompletionService:
    """Everything a completion request needs, injected once per app."""

    def __init__(
        self,
        settings: Settings,
        selector: ExpertSelector,
        dispatcher: Dispatcher,
        metrics: GatewayMetrics,
        streams: ActiveStreams,
        access: Access,
        sessions: SessionRouter | None = None,
        resumer: Resumer | None = None,
    ) -> None:
        self.resumer = resumer
        self.settings = settings
        self.sessions = sessions
        self.selector = selector
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.streams = streams
        self.access = access

    async def chat(self, request: Request, caller: Principal | None = None) -> Response:
        """`POST /v1/chat/completions`."""
        return await self._serve(request, CHAT, caller)

    async def completions(self, request: Request, caller: Principal | None = None) -> Response:
        """`POST /v1/completions`."""
        return await self._serve(request, COMPLETIONS, caller)

    async def responses(self, request: Request, caller: Principal | None = None) -> Response:
        """`POST /v1/responses`: the engine's Responses API, routed on its `input`."""
        return await self._serve(request, RESPONSES, caller)

    async def messages(self, request: Request, caller: Principal | None = None) -> Response:
        """`POST /v1/messages`: the engine's Anthropic-style Messages API, routed on its `messages`."""
        return await self._serve(request, MESSAGES, caller)

    async def count_tokens(self, request: Request, caller: Principal | None = None) -> Response:
        """`POST /v1/messages/count_tokens`: the chosen expert's count for a Messages request."""
        return await self._serve(request, COUNT_TOKENS, caller)

    async def chat_batch(self, request: Request, caller: Principal | None = None) -> Response:
        """`POST /v1/chat/completions/batch` (vLLM's): several conversations answered by one expert."""
        return await self._serve(request, CHAT_BATCH, caller)

    async def tokenize(self, request: Request, caller: Principal | None = None) -> Response:
        """`POST /tokenize`: the chosen expert's tokenizer (an expert's name, or routed like a request)."""
        return await self._serve(request, TOKENIZE, caller)

    async def detokenize(self, request: Request, caller: Principal | None = None) -> Response:
        """`POST /detokenize`: token ids back to text with the chosen expert's tokenizer."""
        return await self._serve(request, DETOKENIZE, caller)

    async def _serve(self, http: Request, endpoint: Endpoint[R], caller: Principal | None) -> Response:
        """Answer one request; every outcome closes its record exactly once."""
        request_id = request_id_of(http)
        record = RequestRecord(self.metrics, request_id, endpoint.name)
        gate = self.access.begin(record, caller)  # limits and privacy guard in, audit and token usage out
        resources = AsyncExitStack()
        try:
            parsed = endpoint.parse(await read_body(http, self.settings.max_body_bytes))
            record.stream = parsed.stream
            parsed = await gate.admit(parsed)
            choice = await self.selector.decide(parsed, gate.allowed)
            if self.sessions is not None and endpoint in CONVERSATIONS:
                scope = caller.subject if caller is not None else None
                choice = self.sessions.apply(session_key(http.headers, parsed, scope), choice)
            self._record_choice(record, choice)
            dispatched = await self.dispatcher.dispatch(
                choice, parsed, endpoint.path, record, resources, request_id, endpoint.on_root,
                stream_usage=endpoint.events is None, content_type=http.headers.get("content-type", ""),
            )
            headers = decision_headers(choice, dispatched, request_id)
            resumer = self.resumer if endpoint in (CHAT, COMPLETIONS) else None
            resumes = resumer is not None and resumer.enabled_for(dispatched.expert, parsed)
            if parsed.stream:
                expert = dispatched.expert
                tap: StreamTap | EventTap
                if endpoint.events is not None:
                    tap = EventTap(expert.name, expert.model, endpoint.events, text=record.answer_parts)
                else:
                    tap = StreamTap(expert.name, expert.model, keep_usage=parsed.include_usage,
                                    text=record.answer_parts)
                opened, idle = dispatched.opened, dispatched.timeouts.idle
                if resumer is not None and resumes:  # it watches each attempt's idleness itself
                    opened = resumer.stream(dispatched, choice, parsed, endpoint.path, record, resources)
                    idle = dispatched.timeouts.total
                return RelayResponse(
                    opened, tap, record, resources, headers, idle, dispatched.timeouts.total, self.streams,
                )
            again: Again | None = None
            if resumer is not None and resumes:
                tried: dict[str, set[int]] = {}
                r, path = resumer, endpoint.path
                again = lambda broken, why: r.retry(broken, choice, parsed, path, record, resources, tried, why)  # noqa: E731
            return await self._whole_answer(dispatched, record, resources, headers, again)
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

    def _record_choice(self, record: RequestRecord, choice: ExpertChoice) -> None:
        record.category, record.confidence, record.reason = choice.category, choice.confidence, choice.reason
        if choice.routed:
            m = self.metrics
            m.routing_decisions.labels(choice.category or "none", choice.expert.name, choice.reason).inc()
            if choice.stage is not None:
                m.routing_stages.labels(choice.stage).inc()
            if choice.category is not None:
                m.routing_duration.observe(choice.seconds)
                m.router_confidence.observe(choice.confidence or 0.0)

    async def _whole_answer(
        self, dispatched: Dispatched, record: RequestRecord, resources: AsyncExitStack, headers: dict[str, str],
        again: Again | None = None,
    ) -> Response:
        """A non-streamed answer: read it whole (asked again elsewhere if `again` allows), rewrite `model`."""
        first = dispatched.opened
        try:
            deadline = anyio.current_time() + dispatched.timeouts.total
            dispatched, body, answer = await read_answer(dispatched, deadline, again)
        except (TimeoutError, httpx.HTTPError) as exc:
            self.metrics.upstream_errors.labels(dispatched.expert.name, "read").inc()
            message = f"The expert '{dispatched.expert.name}' broke off its answer."
            raise APIError(502, message, code="upstream_reset") from exc
        finally:
            with anyio.CancelScope(shield=True):
                await first.response.aclose()
                await resources.aclose()
        expert, opened = dispatched.expert, dispatched.opened
        if not isinstance(answer, dict):
            self.metrics.upstream_errors.labels(expert.name, "malformed").inc()
            raise upstream_error(502, body, opened.response.headers.get("content-type", ""))
        record.usage(answer.get("usage"))
        if record.answer_parts is not None:
            record.answer_parts.append(answer_text(answer))
        rewritten = ModelRewriter(expert.model, expert.name).rewrite(body, answer, sse=False)
        record.close(200)
        return Response(rewritten, media_type="application/json", headers=headers)

