"""Streams of the engine's typed-event APIs (the Responses API, Anthropic's Messages API): relayed as sent.

Their events name their type (`event:` line, or the data's `type`), end with a terminal event instead of
`data: [DONE]`, and count tokens as `input_tokens`/`output_tokens`. The tap reads each event only for what the
gateway accounts (content for the time to first token, usage, the end) and rewrites `model` on the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from gateway.sse import TapState, data_of


@dataclass(frozen=True)
class EventDialect:
    """What one typed-event API calls its content, its end, and how it says that something failed."""

    name: str
    content_types: frozenset[str]
    end_types: frozenset[str]

    def error_event(self, message: str, code: str) -> bytes:
        """An error in this API's own event shape, for a failure after the stream started."""
        if self.name == "messages":
            body: dict[str, Any] = {"type": "error", "error": {"type": "api_error", "message": message}}
        else:
            body = {"type": "error", "code": code, "message": message, "param": None}
        return b"event: error\ndata: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


RESPONSES = EventDialect(
    "responses",
    content_types=frozenset({"response.output_text.delta", "response.reasoning_text.delta",
                             "response.function_call_arguments.delta", "response.refusal.delta"}),
    end_types=frozenset({"response.completed", "response.incomplete", "response.failed", "error"}),
)
MESSAGES = EventDialect(
    "messages",
    content_types=frozenset({"content_block_delta"}),
    end_types=frozenset({"message_stop", "error"}),
)


def _event_type(event: bytes, data: bytes) -> tuple[str, dict[str, Any] | None]:
    """The event's type from its `event:` line, else from its JSON (then also returned, parsed)."""
    if event.startswith(b"event:"):
        line = event[6 : event.find(b"\n")].strip()
        return line.decode("utf-8", "replace"), None
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return "", None
    return (str(obj.get("type", "")), obj) if isinstance(obj, dict) else ("", None)


@dataclass
class EventTap(TapState):
    """The `StreamTap` of a typed-event stream: the bytes go on unchanged except for `model`.

    `error` is never set: the engine's own error events reach the client as it sent them.
    """

    dialect: EventDialect
    end_marker: ClassVar[bytes] = b""  # these streams end with their last event, not with `data: [DONE]`

    def error_event(self, message: str, code: str) -> bytes:
        """A gateway-side failure, in the stream's own shape."""
        return self.dialect.error_event(message, code)

    def process(self, event: bytes) -> tuple[bytes | None, bool]:
        """Return (bytes to forward, whether this event carried content)."""
        data = data_of(event)
        if data is None:
            return event, False  # comments and keep-alives pass through
        kind, obj = _event_type(event, data)
        has_content = kind in self.dialect.content_types
        self.content_events += has_content
        wants_text = has_content and self.text is not None
        if obj is None and (wants_text or b'usage"' in data):
            obj = _loads(data)  # parsed at most once, and only when something is read from it
        if wants_text and self.text is not None and obj is not None:
            self.text.append(_delta_text(obj))
        if obj is not None and b'usage"' in data:
            self._read_usage(obj)
        if kind in self.dialect.end_types:
            self.finished = self.done = True
        out = self._rewriter.rewrite_plain(event)
        return (event if out is None else out), has_content

    def _read_usage(self, obj: dict[str, Any]) -> None:
        """Responses: `response.usage` at the end; Messages: `message.usage` first, then each `usage` update."""
        holder = obj.get("response") or obj.get("message") or obj
        usage = holder.get("usage") if isinstance(holder, dict) else None
        if isinstance(usage, dict):
            self.usage = {**(self.usage or {}), **{k: v for k, v in usage.items() if v is not None}}


def _loads(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _delta_text(obj: dict[str, Any]) -> str:
    """The text a content event adds: the Responses API's `delta` string, or Messages' `delta.text`."""
    delta = obj.get("delta")
    if isinstance(delta, str):
        return delta
    if isinstance(delta, dict) and isinstance(delta.get("text"), str):
        return str(delta["text"])
    return ""
