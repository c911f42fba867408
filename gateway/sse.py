"""Server-sent events from an engine: split into events, tap each for usage and content, rewrite `model`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.errors import APIError

DONE_EVENT = b"data: [DONE]\n\n"


class MalformedEvent(ValueError):
    """An event whose data is neither JSON nor `[DONE]`."""


class EventSplitter:
    """Cuts a byte stream into complete events (each ending in a blank line), whatever the read sizes."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the events they complete."""
        if b"\r" in data or b"\r" in self._buffer[-1:]:
            data = data.replace(b"\r\n", b"\n")
        self._buffer += data
        events: list[bytes] = []
        while (end := self._buffer.find(b"\n\n")) != -1:
            events.append(self._buffer[: end + 2])
            self._buffer = self._buffer[end + 2 :]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet complete (left over when a stream ends)."""
        return self._buffer


# An event needs its JSON read only if it may carry usage, an error or a finish reason. In valid JSON a quote
# inside a string is escaped, so `usage"` etc. can only be the end of a key: these patterns cannot hide in text.
_NEEDS_PARSE = re.compile(rb'usage"(?!:null[,}])|error"|finish_reason"(?!:null[,}])')
_HAS_CONTENT = re.compile(rb'"(?:content|reasoning_content|text)"\s*:\s*"(?!")|"tool_calls"\s*:\s*\[\s*\{')


def data_of(event: bytes) -> bytes | None:
    if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2:
        return event[6:-2]  # the usual one-line event
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _has_content(choice: dict[str, Any]) -> bool:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return bool(delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls"))
    return bool(choice.get("text"))


def answer_text(obj: dict[str, Any]) -> str:
    """The text of an answer or a stream chunk: each choice's message or delta content, or completion text;
    for a Responses API answer its output messages' text, for a Messages API answer its text blocks."""
    if "choices" not in obj:
        output = obj.get("output")
        items: list[Any] = output if isinstance(output, list) else [obj]
        return "".join(
            part["text"]
            for item in items if isinstance(item, dict) and isinstance(item.get("content"), list)
            for part in item["content"] if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    pieces = []
    for choice in obj.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        holder = choice.get("message") or choice.get("delta")
        value = holder.get("content") if isinstance(holder, dict) else choice.get("text")
        if isinstance(value, str):
            pieces.append(value)
    return "".join(pieces)


class ModelRewriter:
    """Puts the expert's name where the engine wrote its own model name, touching no other byte."""

    def __init__(self, upstream_model: str, expert: str) -> None:
        old, new = json.dumps(upstream_model).encode(), json.dumps(expert).encode()
        self.expert = expert
        self._patterns = ((b'"model":' + old, b'"model":' + new), (b'"model": ' + old, b'"model": ' + new))

    def rewrite_plain(self, raw: bytes) -> bytes | None:
        """`raw` with `model` replaced without parsing it; None when the bytes are unusual (parse them)."""
        for old, new in self._patterns:
            if old in raw:
                return raw.replace(old, new, 1)
        return raw if b'model"' not in raw else None

    def rewrite(self, raw: bytes, obj: dict[str, Any], sse: bool) -> bytes:
        """`raw` (the encoding of `obj`) with `model` replaced; re-serialised only if the bytes are unusual."""
        model = obj.get("model")
        if model is None or model == self.expert:
            return raw
        for old, new in self._patterns:
            if old in raw:
                return raw.replace(old, new, 1)
        return self.serialise(obj, sse)

    def serialise(self, obj: dict[str, Any], sse: bool) -> bytes:
        """`obj` with our model name, as JSON (or as one SSE event)."""
        if "model" in obj:
            obj["model"] = self.expert
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        return b"data: " + data + b"\n\n" if sse else data


@dataclass
class TapState:
    """What a stream's tap tells the relay (usage, content, how it ended), and its `model` rewriter."""

    expert: str
    upstream_model: str
    usage: dict[str, Any] | None = field(default=None, kw_only=True)
    content_events: int = field(default=0, kw_only=True)
    finished: bool = field(default=False, kw_only=True)
    done: bool = field(default=False, kw_only=True)
    error: dict[str, Any] | None = field(default=None, kw_only=True)
    # When given, the answer's text is collected here (an audit policy keeps it).
    text: list[str] | None = field(default=None, kw_only=True)
    _rewriter: ModelRewriter = field(init=False)

    def __post_init__(self) -> None:
        self._rewriter = ModelRewriter(self.upstream_model, self.expert)


@dataclass
class StreamTap(TapState):
    """Reads each chat or completion chunk in passing; forwards the original bytes with only `model` rewritten."""

    keep_usage: bool
    end_marker: ClassVar[bytes] = DONE_EVENT  # what ends the stream when the engine's own end was not relayed

    def error_event(self, message: str, code: str) -> bytes:
        """A gateway-side failure after the stream started, as one OpenAI-shaped error event."""
        return APIError(502, message, code=code).sse_event()

    def process(self, event: bytes) -> tuple[bytes | None, bool]:
        """Return (bytes to forward or None to drop, whether this event carried content)."""
        data = data_of(event)
        if data is None:
            return event, False  # comments and keep-alives pass through
        if data == b"[DONE]":
            self.done = True
            return DONE_EVENT, False
        if self.text is None and data[:1] == b"{" and data[-1:] == b"}" and _NEEDS_PARSE.search(data) is None:
            out = self._rewriter.rewrite_plain(event)
            if out is not None:  # a plain content chunk: forwarded without reading its JSON
                has_content = _HAS_CONTENT.search(data) is not None
                self.content_events += has_content
                return out, has_content
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedEvent(f"the expert sent an event that is not JSON: {data[:80]!r}") from exc
        if not isinstance(obj, dict):
            raise MalformedEvent("the expert sent an event that is not a JSON object")
        if "error" in obj and "choices" not in obj:
            self.error = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
            return None, False
        choices = obj.get("choices") or []
        has_content = any(isinstance(c, dict) and _has_content(c) for c in choices)
        if has_content:
            self.content_events += 1
            if self.text is not None:
                self.text.append(answer_text(obj))
        if any(isinstance(c, dict) and c.get("finish_reason") for c in choices):
            self.finished = True
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            if not self.keep_usage:
                if not choices:
                    return None, has_content  # the usage chunk the client did not ask for
                obj.pop("usage")
                return self._rewriter.serialise(obj, sse=True), has_content
        return self._rewriter.rewrite(event, obj, sse=True), has_content
