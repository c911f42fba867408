"""The engine client: requests go straight to the transport with their timeouts, from a bounded URL cache."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.engine_client import EngineClient
from gateway.engine_transport import EngineTransport


class Recorder(httpx.AsyncBaseTransport):
    """A transport that keeps each request it is given and answers 200 with a fixed body."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, content=b'{"ok": true}')


def test_post_hands_body_headers_and_timeouts_to_the_transport() -> None:
    asyncio.run(_post_once())


async def _post_once() -> None:
    transport = Recorder()
    client = EngineClient(transport)
    response = await client.post("http://engine:8000/v1/chat/completions", b'{"a": 1}',
                                 {"content-type": "application/json", "x-request-id": "r1"}, connect_s=2.5)
    sent = transport.requests[0]
    assert sent.method == "POST"
    assert str(sent.url) == "http://engine:8000/v1/chat/completions"
    assert sent.headers["x-request-id"] == "r1" and sent.headers["host"] == "engine:8000"
    assert sent.content == b'{"a": 1}' and sent.headers["content-length"] == "8"
    assert sent.extensions["timeout"] == {"connect": 2.5, "read": None, "write": 2.5, "pool": 2.5}
    assert response.request is sent and await response.aread() == b'{"ok": true}'


def test_urls_are_parsed_once_and_the_cache_stays_bounded() -> None:
    asyncio.run(_post_many())


async def _post_many() -> None:
    transport = Recorder()
    client = EngineClient(transport, max_urls=3)
    for _ in range(2):
        await client.post("http://a/v1/completions", b"{}", {}, connect_s=1)
    assert client._url("http://a/v1/completions") is client._url("http://a/v1/completions")  # parsed once
    assert transport.requests[0].url == transport.requests[1].url
    for i in range(10):
        await client.post(f"http://replica-{i}/v1/completions", b"{}", {}, connect_s=1)
        assert len(client._urls) <= 3
    assert str(transport.requests[-1].url) == "http://replica-9/v1/completions"


def test_to_the_gateways_transport_a_request_goes_as_its_wire_bytes() -> None:
    asyncio.run(_post_raw())


async def _post_raw() -> None:
    received: list[bytes] = []
    finished = asyncio.Event()

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.startswith(b"Content-Length")))
        received.append(head + await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}")
        await writer.drain()
        await reader.read()  # until the client closes its kept-alive connection
        writer.close()
        await writer.wait_closed()
        finished.set()

    server = await asyncio.start_server(engine, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = EngineTransport(4)
    client = EngineClient(transport)
    try:
        response = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", b'{"a": 1}',
                                     {"content-type": "application/json", "x-request-id": "r1"}, connect_s=2.5)
        assert response.status_code == 200 and await response.aread() == b'{"ok":true}'
        await response.aclose()
        assert received == [
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\ncontent-type: application/json\r\n"
            b"x-request-id: r1\r\nContent-Length: 8\r\n\r\n{\"a\": 1}" % port
        ]
        with pytest.raises(httpx.LocalProtocolError):  # a header value cannot smuggle in a second header
            await asyncio.wait_for(client.post(f"http://127.0.0.1:{port}/v1/completions", b"{}",
                                               {"content-type": "text/plain\r\nx-admin: 1"}, connect_s=1), 5)
        assert len(received) == 1
    finally:
        await transport.aclose()
        await asyncio.wait_for(finished.wait(), 5)
        server.close()
        await server.wait_closed()
