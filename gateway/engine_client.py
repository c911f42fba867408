"""Requests to the engines handed straight to the transport, without httpx.AsyncClient's layers.

`AsyncClient.send` merges base URLs, default headers and cookies, runs auth and redirect hooks and parses the URL
again for every request: about a fifth of the gateway's CPU per streamed request, for nothing an engine needs.
Here a request is built once from a cached, already parsed URL and given to the transport as it is.
"""

from __future__ import annotations

import httpx


class EngineClient:
    """POSTs to engine URLs through one transport (the app's `EngineTransport`, or a test's)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, max_urls: int = 1024) -> None:
        self.transport = transport
        self._urls: dict[str, httpx.URL] = {}
        self._max_urls = max_urls

    def _url(self, url: str) -> httpx.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= self._max_urls:  # replicas come and go with reloads: never grow without bound
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    async def post(self, url: str, body: bytes, headers: dict[str, str], connect_s: float) -> httpx.Response:
        """Send `body`; the response's body is left to stream. `connect_s` bounds the wait for a connection."""
        timeout = {"connect": connect_s, "read": None, "write": connect_s, "pool": connect_s}
        request = httpx.Request("POST", self._url(url), content=body, headers=headers,
                                extensions={"timeout": timeout})
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response
