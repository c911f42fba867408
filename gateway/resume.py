"""Finishing an answer whose engine broke mid-stream: continue it on another replica (or expert) as one stream."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import httpx

from gateway.accounting import RequestRecord
from gateway.dispatch import Dispatched, Dispatcher, upstream_body
from gateway.errors import APIError
from gateway.health import HealthBoard
from gateway.metrics import GatewayMetrics
from gateway.protocol import ChatCompletionRequest, CompletionRequest, ParsedRequest
from gateway.registry import ExpertConfig, Registry
from gateway.routing import ExpertChoice
from gateway.sse import EventSplitter, _data_of
from gateway.upstream import Opened, StreamStalled

# Parameters whose answer a continuation cannot reproduce: several choices, per-token logprobs, tool calls,
# grammars (they would restart at the partial text), the prompt echoed back, usage on every chunk.
_BLOCKING_KEYS = ("tools", "functions", "response_format", "guided_json", "guided_regex", "guided_choice",
                  "guided_grammar", "structured_outputs", "echo", "suffix", "continue_final_message")


def resume_blocker(request: ParsedRequest) -> str | None:
    """Why this streamed request cannot be resumed mid-answer (None: it can)."""
    p = request.payload
    if p.get("n") not in (None, 1) or p.get("best_of") not in (None, 1):
        return "n"
    if p.get("logprobs") not in (None, False) or p.get("top_logprobs") not in (None, 0):
        return "logprobs"
    for key in _BLOCKING_KEYS:
        if p.get(key) not in (None, False, [], {"type": "text"}):
            return key
    if (p.get("stream_options") or {}).get("continuous_usage_stats"):
        return "continuous_usage_stats"
    if isinstance(request, CompletionRequest):
        prompt = p.get("prompt")
        one_text = isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str)
        if not (isinstance(prompt, str) or one_text):
            return "prompt"  # token ids or several prompts: no text to append to
    elif not isinstance(request, ChatCompletionRequest) or not isinstance(p.get("messages"), list):
        return "messages"
    return None


def continuation(request: ParsedRequest, partial: str, used_tokens: int) -> ParsedRequest | None:
    """The request that continues `partial` with the tokens left (None when none are left)."""
    payload = dict(request.payload)
    for key in ("max_tokens", "max_completion_tokens"):
        limit = payload.get(key)
        if isinstance(limit, int):
            if limit - used_tokens < 1:
                return None
            payload[key] = limit - used_tokens
    if partial and isinstance(request, ChatCompletionRequest):
        payload["messages"] = [*payload["messages"], {"role": "assistant", "content": partial}]
        payload["continue_final_message"], payload["add_generation_prompt"] = True, False
    elif partial:
        prompt = payload["prompt"]
        payload["prompt"] = prompt + partial if isinstance(prompt, str) else [prompt[0] + partial]
    return replace(request, payload=payload)


@dataclass
class Attempt:
    """What one engine attempt sent: its id, the text so far, how many content chunks, whether it finished."""

    dispatched: Dispatched
    text: list[str] = field(default_factory=list)
    chunks: int = 0
    upstream_id: str | None = None
    finished: bool = False
    done: bool = False
    error: bytes | None = None
    unresumable: bool = False  # tool calls or reasoning were streamed


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


class ResumingStream:
    """The bytes of one engine stream, then of its continuations: one id, one usage chunk, no repeated text."""

    def __init__(
        self, resumer: Resumer, first: Dispatched, choice: ExpertChoice, request: ParsedRequest, path: str,
        record: RequestRecord, resources: AsyncExitStack,
    ) -> None:
        self.resumer = resumer
        self.choice = choice
        self.request = request
        self.path = path
        self.record = record
        self.resources = resources
        self.chat = isinstance(request, ChatCompletionRequest)
        self.attempts = [Attempt(first)]
        self.stream_id: str | None = None
        self.tried: dict[str, set[int]] = {}

    async def chunks(self) -> AsyncIterator[bytes]:
        """Relay each attempt's events; on a break, continue with the text so far on another engine."""
        while True:
            attempt = self.attempts[-1]
            reason: str | None = None
            failure: BaseException | None = None
            splitter = EventSplitter()
            try:
                async with aclosing(self._reads(attempt.dispatched)) as reads:
                    async for data in reads:
                        out = [o for event in splitter.feed(data) if (o := self._look(attempt, event)) is not None]
                        if out:
                            yield b"".join(out)
                        if attempt.error is not None:
                            reason = "error_event"
                            break
            except httpx.HTTPError as exc:
                reason, failure = "reset", exc
            except TimeoutError:
                reason = "stalled"
                failure = StreamStalled()
            if reason is None:
                if attempt.done or attempt.finished or splitter.pending.strip():
                    if splitter.pending:
                        yield splitter.pending  # a cut event is the relay's to report as malformed
                    return
                reason = "incomplete"
            again = await self._resume(attempt, reason)
            if again is None:
                if reason == "error_event":
                    yield attempt.error or b""
                    return
                if failure is None:
                    return  # the relay reports the stream that ended early
                raise failure
            note = f": coe-resumed attempt={len(self.attempts) + 1} reason={reason} expert={again.expert.name}"
            yield f"{note} replica={again.replica.label}\n\n".encode()
            self.attempts.append(Attempt(again))

    async def _reads(self, dispatched: Dispatched) -> AsyncGenerator[bytes, None]:
        """The attempt's bytes, each read within the idle timeout (a stall raises TimeoutError)."""
        opened = dispatched.opened
        if opened.head:
            yield opened.head
        while True:
            with anyio.fail_after(dispatched.timeouts.idle):
                chunk = await anext(opened.chunks, None)
            if chunk is None:
                return
            yield chunk

    async def _resume(self, attempt: Attempt, reason: str) -> Dispatched | None:
        if attempt.finished or attempt.unresumable:
            return None
        partial = "".join(t for a in self.attempts for t in a.text)
        used = sum(a.chunks for a in self.attempts)  # vLLM streams one token per content chunk
        request = continuation(self.request, partial, used)
        if request is None:
            return None
        return await self.resumer.retry(
            attempt.dispatched, self.choice, request, self.path, self.record, self.resources, self.tried, reason
        )

    def _look(self, attempt: Attempt, event: bytes) -> bytes | None:
        """Read one event: note its text; in a continuation, give it the first id and the summed usage."""
        data = _data_of(event)
        if data is None:
            return event
        if data == b"[DONE]":
            attempt.done = True
            return event
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return event  # the relay's tap reports it
        if not isinstance(obj, dict):
            return event
        if "error" in obj and "choices" not in obj:
            attempt.error = event
            return None
        if attempt.upstream_id is None and isinstance(obj.get("id"), str):
            attempt.upstream_id = obj["id"]
            self.stream_id = self.stream_id or obj["id"]
        for choice in obj.get("choices") or ():
            if isinstance(choice, dict):
                self._note(attempt, choice)
        if len(self.attempts) == 1:
            return event
        return self._as_first(attempt, event, obj)

    def _note(self, attempt: Attempt, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") if self.chat else choice
        if isinstance(delta, dict):
            text = delta.get("content") if self.chat else delta.get("text")
            if isinstance(text, str) and text:
                attempt.text.append(text)
                attempt.chunks += 1
            if delta.get("tool_calls") or delta.get("reasoning_content") or delta.get("reasoning"):
                attempt.unresumable = True
        if choice.get("finish_reason"):
            attempt.finished = True

    def _as_first(self, attempt: Attempt, event: bytes, obj: dict[str, Any]) -> bytes | None:
        """A continuation's event as if the first attempt had sent it."""
        choices = obj.get("choices") or []
        if self.chat and choices and all(_role_only(c) for c in choices):
            return None  # the continuation's opening role chunk: the client already has one
        usage = obj.get("usage")
        if isinstance(usage, dict):
            obj["usage"] = self._summed(usage)
        elif attempt.upstream_id and self.stream_id and attempt.upstream_id != self.stream_id:
            new, old = json.dumps(attempt.upstream_id).encode(), json.dumps(self.stream_id).encode()
            for pattern in (b'"id":', b'"id": '):
                if pattern + new in event:
                    return event.replace(pattern + new, pattern + old, 1)
        obj["id"] = self.stream_id
        return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"

    def _summed(self, last: dict[str, Any]) -> dict[str, Any]:
        """Usage of all attempts: a broken attempt's prompt is the next one's less the text it had streamed."""
        prompt, completion = last.get("prompt_tokens"), last.get("completion_tokens")
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return last
        total_prompt, later = prompt, 0
        for attempt in reversed(self.attempts[:-1]):
            later += attempt.chunks
            total_prompt += max(prompt - later, 0)
        total_completion = completion + sum(a.chunks for a in self.attempts[:-1])
        return {**last, "prompt_tokens": total_prompt, "completion_tokens": total_completion,
                "total_tokens": total_prompt + total_completion}


def _role_only(choice: Any) -> bool:
    if not isinstance(choice, dict) or choice.get("finish_reason"):
        return False
    delta = choice.get("delta")
    return isinstance(delta, dict) and not delta.get("content") and not delta.get("tool_calls")




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
