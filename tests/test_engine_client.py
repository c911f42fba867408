"""The engine client: requests go straight to the transport with their timeouts, from a bounded URL cache."""

from __future__ import annotations

import asyncio

import httpx

from gateway.engine_client import EngineClient


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
