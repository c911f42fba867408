"""The gateway's HTTP transport to the engines: httpx's API over lean keep-alive connections.

httpx's default transport (httpcore, h11, anyio streams) passes each streamed chunk through several async layers
and a pure-Python parser, and its pool walks every connection it holds whenever a request starts or ends. Here a
request is one socket write, a response is parsed in C as it arrives (`engine_connection`), and idle connections
wait in a stack per engine. The gateway still builds, sends and reads ordinary `httpx` requests and responses.
Only plain `http://` is handled here; anything else (TLS) goes to httpx's own transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress

import httpx

from gateway.engine_connection import EngineConnection

Origin = tuple[str, int]


class _Body(httpx.AsyncByteStream):
    """A response's body; closing it gives the connection back (kept when the answer was read to its end)."""

    def __init__(self, transport: EngineTransport, connection: EngineConnection, read_s: float | None) -> None:
        self._transport = transport
        self._connection = connection
        self._read_s = read_s
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while True:
            if self._read_s is None:
                piece = await connection.next_piece()
            else:
                try:
                    async with asyncio.timeout(self._read_s):
                        piece = await connection.next_piece()
                except TimeoutError as exc:
                    raise httpx.ReadTimeout("the engine sent nothing in time") from exc
            if piece is None:
                return
            yield piece

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport.give_back(self._connection)


class EngineTransport(httpx.AsyncBaseTransport):
    """At most `max_connections` connections in use at once; a request waits for one past that (pool timeout)."""

    def __init__(self, max_connections: int, other: httpx.AsyncBaseTransport | None = None) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[Origin, list[EngineConnection]] = {}
        self._open: set[EngineConnection] = set()
        self._other = other or httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=max_connections))
        self.busy = 0  # connections carrying a request or an unclosed response (tests read it)

    def connections(self) -> list[EngineConnection]:
        """Every connection open now, busy or idle."""
        return [c for c in self._open if not c.lost]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            return await self._other.handle_async_request(request)
        message = _head(request) + await request.aread()
        return await self.open((url.host, url.port or 80), message, request.extensions.get("timeout", {}))

    async def open(self, origin: Origin, message: bytes, limits: dict[str, float | None]) -> httpx.Response:
        """Send a request already on the wire's terms (`message`: head and body) and return its response;
        `limits` are the seconds httpx would take from the request's timeout extension."""
        await self._take_slot(limits.get("pool"))
        try:
            connection = await self._send(origin, message, limits.get("connect"), limits.get("read"))
        except BaseException:
            self._slots.release()
            raise
        return httpx.Response(connection.status, headers=connection.headers,
                              stream=_Body(self, connection, limits.get("read")),
                              extensions={"http_version": b"HTTP/1.1"})

    async def _send(self, origin: Origin, message: bytes, connect_s: float | None,
                    read_s: float | None) -> EngineConnection:
        """Write the request on an idle connection (or a new one) and read the answer's head."""
        while True:
            connection = self._reuse(origin)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(origin, connect_s)
            connection.begin()
            self.busy += 1
            try:
                connection.send(message)
                if read_s is None:
                    await connection.read_head()
                else:
                    async with asyncio.timeout(read_s):
                        await connection.read_head()
                return connection
            except TimeoutError as exc:
                self._discard(connection)
                raise httpx.ReadTimeout("the engine did not answer in time") from exc
            except httpx.RemoteProtocolError:
                self._discard(connection)
                if reused and not connection.received_any:
                    continue  # the engine had closed this idle connection just before: a fresh one
                raise
            except BaseException:
                self._discard(connection)  # cancelled mid-request: its state is unknown
                raise

    def _reuse(self, origin: Origin) -> EngineConnection | None:
        stack = self._idle.get(origin)
        while stack:
            connection = stack.pop()  # the most recently used: the least likely to have timed out
            if not connection.lost:
                return connection
            self._open.discard(connection)
        return None

    async def _connect(self, origin: Origin, connect_s: float | None) -> EngineConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_s):
                _, connection = await loop.create_connection(lambda: EngineConnection(origin), *origin)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"no connection to {origin[0]}:{origin[1]} in time") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {origin[0]}:{origin[1]} ({exc})") from exc
        self._open.add(connection)
        return connection

    async def _take_slot(self, pool_s: float | None) -> None:
        try:
            async with asyncio.timeout(pool_s):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("every connection to the engines is in use") from exc

    def give_back(self, connection: EngineConnection) -> None:
        """A response was closed: keep its connection for the next request, or close it."""
        self.busy -= 1
        self._slots.release()
        if connection.reusable:
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            self._open.discard(connection)
            connection.close()

    def _discard(self, connection: EngineConnection) -> None:
        self.busy -= 1
        self._open.discard(connection)
        connection.close()

    async def aclose(self) -> None:
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()
        with suppress(Exception):
            await self._other.aclose()


def _head(request: httpx.Request) -> bytes:
    """The request line and headers, as they go on the wire."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), request.url.raw_path)]
    for name, value in request.headers.raw:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)
