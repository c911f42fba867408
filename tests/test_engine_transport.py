"""The transport to the engines against scripted loopback servers: keep-alive, limits, and every way a reply breaks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from gateway.engine_connection import READ_AHEAD_BYTES
from gateway.engine_transport import EngineTransport

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


def chunked(*pieces: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    return head + body + b"0\r\n\r\n"


def fixed(wire: bytes, hold_s: float = 0.0, keep_open: bool = False) -> Reply:
    """A reply that writes `wire`, waits `hold_s`, then closes the connection (keeps it with `keep_open`)."""
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(wire)
        await writer.drain()
        await asyncio.sleep(hold_s)
        return keep_open

    return reply


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = lengths[0] if lengths else 0
    return head + await reader.readexactly(length)


class Server:
    """A loopback server whose `reply(reader, writer, n)` answers the n-th request; False closes the connection."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    self.requests.append(await read_request(reader))
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if not await self.reply(reader, writer, len(self.requests)):
                    return
        finally:
            writer.close()


def run(check: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(check())


async def stream_text(client: httpx.AsyncClient, url: str) -> tuple[int, bytes]:
    async with client.stream("POST", url, content=b'{"stream":true}') as response:
        return response.status_code, b"".join([piece async for piece in response.aiter_raw()])


def test_a_connection_is_kept_alive_and_reused_and_the_body_comes_de_chunked() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(chunked(b"data: %d\n\n" % n, b"data: [DONE]\n\n"))
        return True

    async def check() -> None:
        transport = EngineTransport(4)
        async with Server(reply) as url, httpx.AsyncClient(transport=transport) as client:
            for n in (1, 2, 3):
                answer = await stream_text(client, url + "/v1/chat/completions")
                assert answer == (200, b"data: %d\n\ndata: [DONE]\n\n" % n)
                assert transport.busy == 0
            assert len(transport.connections()) == 1
        assert transport.connections() == []

    run(check)


def test_the_request_goes_out_whole_with_its_headers() -> None:
    seen: list[bytes] = []

    async def check() -> None:
        server = Server(fixed(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\nnope!", keep_open=True))
        async with server as url, httpx.AsyncClient(transport=EngineTransport(4)) as client:
            response = await client.post(url + "/v1/completions?x=1", content=b'{"a":1}',
                                         headers={"x-request-id": "r1"})
            assert (response.status_code, response.content) == (400, b"nope!")
            seen.extend(server.requests)
        head, body = seen[0].split(b"\r\n\r\n", 1)
        assert head.startswith(b"POST /v1/completions?x=1 HTTP/1.1\r\n")
        assert b"x-request-id: r1" in head.lower() and b"content-length: 7" in head.lower() and body == b'{"a":1}'

    run(check)


def test_an_engine_that_closes_idle_connections_costs_nothing_but_a_new_one() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        if n == 2:
            return False  # the engine's idle timeout closed the connection as the request went out: no answer
        writer.write(chunked(b"answer %d" % n))
        await writer.drain()
        return n != 3  # keep-alive promised, connection closed anyway once answered

    async def check() -> None:
        server = Server(reply)
        async with server as url, httpx.AsyncClient(transport=EngineTransport(4)) as client:
            assert await stream_text(client, url) == (200, b"answer 1")
            assert await stream_text(client, url) == (200, b"answer 3")  # asked again on a fresh connection
            await asyncio.sleep(0.05)  # let the close arrive: the idle connection is seen closed, not tried
            assert await stream_text(client, url) == (200, b"answer 4")
        assert server.connections == 3 and len(server.requests) == 4

    run(check)


def test_a_connection_closed_by_the_engine_says_so_is_not_reused() -> None:
    reply = fixed(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok", keep_open=True)

    async def check() -> None:
        transport = EngineTransport(4)
        async with Server(reply) as url, httpx.AsyncClient(transport=transport) as client:
            assert (await client.get(url)).content == b"ok"
            assert transport.connections() == [] and transport.busy == 0

    run(check)


@pytest.mark.parametrize("wire", [
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",  # then the engine dies
    b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort",
])
def test_an_answer_cut_short_raises_an_httpx_error_and_frees_the_connection(wire: bytes) -> None:
    async def check() -> None:
        transport = EngineTransport(4)
        async with Server(fixed(wire)) as url, httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await stream_text(client, url)
            assert transport.busy == 0 and transport.connections() == []

    run(check)


def test_garbage_instead_of_http_is_a_protocol_error() -> None:
    reply = fixed(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", hold_s=30.0)  # the engine keeps the connection open

    async def check() -> None:
        transport = EngineTransport(4)
        async with Server(reply) as url, httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(url, content=b"{}", timeout=5.0)  # refused at once, not timed out
            assert transport.busy == 0

    run(check)


def test_no_engine_listening_is_a_connect_error() -> None:
    async def check() -> None:
        async with Server(lambda r, w, n: asyncio.sleep(0, False)) as url:
            pass  # the port is free again
        async with httpx.AsyncClient(transport=EngineTransport(4)) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url)

    run(check)


def test_past_the_connection_limit_a_request_waits_for_a_free_one() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(chunked(b"first" if n == 1 else b"second"))
        return True

    async def check() -> None:
        transport = EngineTransport(1)
        async with Server(reply) as url, httpx.AsyncClient(transport=transport) as client:
            first = await client.send(client.build_request("GET", url), stream=True)
            with pytest.raises(httpx.PoolTimeout):
                await client.get(url, timeout=httpx.Timeout(5.0, pool=0.1))
            waiting = asyncio.create_task(client.get(url))
            await asyncio.sleep(0.1)
            assert not waiting.done()
            await first.aread()
            await first.aclose()
            assert (await waiting).content == b"second"
            assert len(transport.connections()) == 1

    run(check)


def test_a_response_closed_before_its_end_closes_its_connection() -> None:
    reply = fixed(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n", hold_s=0.5)

    async def check() -> None:
        transport = EngineTransport(4)
        async with Server(reply) as url, httpx.AsyncClient(transport=transport) as client:
            async with client.stream("GET", url) as response:
                async for piece in response.aiter_raw():
                    assert piece == b"hello"
                    break
            assert transport.busy == 0 and transport.connections() == []

    run(check)


def test_a_reader_that_falls_behind_pauses_the_socket_and_loses_nothing() -> None:
    piece = b"x" * 65536
    count = 3 * READ_AHEAD_BYTES // len(piece)

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(chunked(*[piece] * count))
        await writer.drain()
        return True

    async def check() -> None:
        transport = EngineTransport(4)
        async with Server(reply) as url, httpx.AsyncClient(transport=transport) as client:
            async with client.stream("GET", url) as response:
                await asyncio.sleep(0.3)  # the engine writes everything it can meanwhile
                connection = transport.connections()[0]
                # at most one socket read past the limit
                assert connection._paused and connection._buffered <= READ_AHEAD_BYTES + (1 << 18)
                total = sum([len(p) async for p in response.aiter_raw()])
            assert total == count * len(piece) and transport.busy == 0

    run(check)


def test_other_schemes_go_to_the_other_transport() -> None:
    async def check() -> None:
        other = httpx.MockTransport(lambda request: httpx.Response(204))
        async with httpx.AsyncClient(transport=EngineTransport(4, other)) as client:
            assert (await client.get("https://engine.example/v1/models")).status_code == 204

    run(check)
