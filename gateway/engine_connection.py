"""One keep-alive HTTP/1.1 connection to an engine: an asyncio protocol fed to httptools' C response parser."""

from __future__ import annotations

import asyncio
import socket
from collections import deque

import httptools
import httpx

# Past this many unread body bytes the socket stops being read: a slow client slows its engine (TCP does the rest).
READ_AHEAD_BYTES = 1 << 20


class EngineConnection(asyncio.Protocol):
    """Carries one response at a time; body bytes of one socket read come out as one piece."""

    def __init__(self, origin: tuple[str, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.begin()

    def begin(self) -> None:
        """Ready for the next response on this connection."""
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.received_any = False
        self.error: Exception | None = None
        self._until_eof = False
        self._keep_alive = False
        self._body: deque[bytes] = deque()
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small requests leave at once
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"the engine sent invalid HTTP ({exc})"))
            self.close()
        if self._pieces:
            piece = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
            self._pieces.clear()
            self._body.append(piece)
            self._buffered += len(piece)
            if self._buffered > READ_AHEAD_BYTES and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.head_done and self._until_eof:
            self.complete = True  # a body without length or chunking ends with the connection
        elif not self.complete:
            detail = "before its answer" if not self.received_any else "in the middle of its answer"
            self._fail(httpx.RemoteProtocolError(f"the engine closed the connection {detail}"))
        self._wake()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # an interim answer: the real head follows
            self.headers.clear()
            return
        names = {name.lower() for name, _ in self.headers}
        self._until_eof = b"content-length" not in names and b"transfer-encoding" not in names
        self._keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once the message is complete
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self._pieces.append(body)

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True

    # the transport's side

    @property
    def reusable(self) -> bool:
        """True when the answer was read to its end and the engine keeps the connection open."""
        return self.complete and self._keep_alive and not self.lost and self.error is None and not self._body

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def read_head(self) -> None:
        """Wait for the status line and headers."""
        while not self.head_done:
            self._raise_if_broken()
            await self._wait()

    async def next_piece(self) -> bytes | None:
        """The next body bytes, or None at the end of the answer."""
        while True:
            if self._body:
                piece = self._body.popleft()
                self._buffered -= len(piece)
                if self._paused and self._buffered <= READ_AHEAD_BYTES // 2 and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return piece
            if self.complete:
                return None
            self._raise_if_broken()
            await self._wait()

    def _raise_if_broken(self) -> None:
        if self.error is not None:
            raise self.error
        if self.lost:
            raise httpx.RemoteProtocolError("the engine closed the connection")

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
