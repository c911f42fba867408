"""A resuming byte stream: one engine's events, then its continuations', as one stream for the relay."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from gateway.accounting import RequestRecord
from gateway.continuation import continuation
from gateway.dispatch import Dispatched
from gateway.protocol import ChatCompletionRequest, ParsedRequest
from gateway.routing import ExpertChoice
from gateway.sse import EventSplitter
from gateway.upstream import StreamStalled

if TYPE_CHECKING:
    from gateway.resume import Resumer


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
                        out = []
                        for event in splitter.feed(data):
                            relayed = self._look(attempt, event)
                            if attempt.error is not None:
                                break  # what follows an error event in the same read ([DONE]) is not relayed
                            if relayed is not None:
                                out.append(relayed)
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
        data = _event_data(event)
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


def _event_data(event: bytes) -> bytes | None:
    """The data of one event (None for comments); kept here so the relay's tap can change freely."""
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None
