"""The streaming answer: relay the engine's events as they come, watch for the client leaving, end cleanly."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack, suppress
from typing import Any

import anyio
import httpx
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.accounting import RequestRecord
from gateway.event_tap import EventTap
from gateway.sse import EventSplitter, MalformedEvent, StreamTap
from gateway.upstream import Opened, StreamStalled

log = logging.getLogger(__name__)

SSE_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}


class ActiveStreams:
    """The cancel scopes of running relays, so a shutdown can give them a common deadline."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self.drain_deadline: float | None = None

    def add(self, scope: anyio.CancelScope) -> None:
        if self.drain_deadline is not None:
            scope.deadline = min(scope.deadline, self.drain_deadline)
        self._scopes.add(scope)

    def discard(self, scope: anyio.CancelScope) -> None:
        self._scopes.discard(scope)

    def __len__(self) -> int:
        return len(self._scopes)

    def drain(self, now: float, grace_s: float) -> None:
        """Let every stream run at most `grace_s` more seconds (`now` on the event loop's clock)."""
        self.drain_deadline = now + grace_s
        for scope in self._scopes:
            scope.deadline = min(scope.deadline, self.drain_deadline)


class RelayResponse(Response):
    """An ASGI response relaying one engine stream; the record is closed exactly once, whatever happens."""

    def __init__(
        self,
        opened: Opened,
        tap: StreamTap | EventTap,
        record: RequestRecord,
        resources: AsyncExitStack,
        headers: dict[str, str],
        idle_timeout_s: float,
        total_timeout_s: float,
        streams: ActiveStreams,
    ) -> None:
        self.opened = opened
        self.tap = tap
        self.record = record
        self.resources = resources
        self.stream_headers = {**SSE_HEADERS, **headers}
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s
        self.streams = streams
        self.status_for_record = 200
        self._answered = False
        self._stalled = False
        self._last_read = 0.0
        self._tail = b""  # the events that end the stream, sent with the last body message (one write, not two)
        self._scope = anyio.CancelScope()
        self._idle_timer: asyncio.TimerHandle | None = None
        self.status_code = 200
        self.background = None  # Response.__init__ is skipped: it would add content-length: 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The two watchers are a plain task and a timer, not an anyio task group: a group and its cancellation
        # cost more CPU than the rest of a stream's first chunk (anyio formats the cancelling task's repr).
        loop = asyncio.get_running_loop()
        watcher: asyncio.Task[None] | None = None
        try:
            await send({
                "type": "http.response.start",
                "status": 200,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.stream_headers.items()],
            })
            self._scope = anyio.CancelScope(deadline=anyio.current_time() + self.total_timeout_s)
            self._last_read = time.monotonic()
            watcher = loop.create_task(self._watch_disconnect(receive))
            self._idle_timer = loop.call_later(self.idle_timeout_s, self._check_idle)
            await self._relay(send)
        except OSError:
            self.record.disconnected = True  # the server could not write: the client is gone
        finally:
            if watcher is not None:
                watcher.cancel()
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            with anyio.CancelScope(shield=True):
                await self.opened.response.aclose()
                await self.resources.aclose()
            self.record.usage(self.tap.usage)
            if self.record.disconnected:
                self.status_for_record = 499
            self.record.close(self.status_for_record)

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if self._answered:
                    return
                self.record.disconnected = True
                self._scope.cancel()
                return

    def _check_idle(self) -> None:
        """Cut the relay when the engine sends nothing for `idle_timeout_s` (one timer, not one per chunk)."""
        left = self._last_read + self.idle_timeout_s - time.monotonic()
        if left > 0:
            self._idle_timer = asyncio.get_running_loop().call_later(left, self._check_idle)
            return
        self._idle_timer = None
        self._stalled = True
        self._scope.cancel()

    async def _emit(self, send: Send, data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": True})

    async def _fail(self, send: Send, message: str, code: str, kind: str) -> None:
        self.record.error_kind = kind
        self.status_for_record = 502
        await self._emit(send, self.tap.error_event(message, code))

    async def _relay(self, send: Send) -> None:
        splitter = EventSplitter()
        with self._scope as scope:
            self.streams.add(scope)
            try:
                await self._pump(send, splitter)
            except MalformedEvent as exc:
                await self._fail(send, str(exc), "upstream_malformed", "malformed")
            except httpx.HTTPError as exc:
                kind = type(exc).__name__
                await self._fail(send, f"The expert's stream broke ({kind}).", "upstream_reset", "reset")
            except StreamStalled:  # raised by a resuming stream, which watches idleness itself
                await self._fail(send, "The expert stopped sending (idle timeout).", "upstream_stalled", "stalled")
            finally:
                self.streams.discard(scope)
        if self.record.disconnected:
            return  # the client left: nothing more to send
        if scope.cancelled_caught and self._stalled:
            await self._fail(send, "The expert stopped sending (idle timeout).", "upstream_stalled", "stalled")
        elif scope.cancelled_caught:
            shutting_down = self.streams.drain_deadline is not None
            message = "The gateway is shutting down." if shutting_down else "The answer took longer than allowed."
            await self._fail(send, message, "shutdown" if shutting_down else "total_timeout", "cut")
        self._answered = True  # from here on, a disconnect is the client closing after reading everything
        ending = self._tail + (self.tap.end_marker if not self.tap.done else b"")
        await send({"type": "http.response.body", "body": ending, "more_body": False})
        if self.tap.done and self.status_for_record == 200:
            await self._read_to_end()

    async def _read_to_end(self) -> None:
        """Consume what follows `[DONE]` (normally nothing) so the upstream connection goes back to the pool."""
        with suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                async for _ in self.opened.chunks:
                    pass

    async def _pump(self, send: Send, splitter: EventSplitter) -> None:
        chunk: bytes | None = self.opened.head
        while chunk is not None:
            now = time.perf_counter()
            outgoing: list[bytes] = []  # every event of one read leaves in one write
            for event in splitter.feed(chunk):
                out, has_content = self.tap.process(event)
                if has_content:
                    self.record.content(now)
                if self.tap.error is not None:
                    await self._flush(send, outgoing)
                    await self._upstream_error_event(send)
                    return
                if out:
                    outgoing.append(out)
                if self.tap.done:
                    self._tail = b"".join(outgoing)
                    return
            await self._flush(send, outgoing)
            chunk = await anext(self.opened.chunks, None)
            self._last_read = time.monotonic()
        if splitter.pending.strip():
            raise MalformedEvent("the expert's stream ended inside an event")
        if not self.tap.finished:
            message = "The expert's stream ended before the answer did."
            await self._fail(send, message, "upstream_incomplete", "incomplete")

    async def _flush(self, send: Send, outgoing: list[bytes]) -> None:
        if outgoing:
            await self._emit(send, outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))

    async def _upstream_error_event(self, send: Send) -> None:
        error: dict[str, Any] = self.tap.error or {}
        message = error.get("message") if isinstance(error.get("message"), str) else "The expert reported an error."
        await self._fail(send, str(message), "upstream_error", "error_event")
