"""Requests to the engines handed straight to the transport, without httpx.AsyncClient's layers.

`AsyncClient.send` merges base URLs, default headers and cookies, runs auth and redirect hooks and parses the URL
again for every request: about a fifth of the gateway's CPU per streamed request, for nothing an engine needs.
Here a request is built once from a cached, already parsed URL and given to the transport as it is; to the
gateway's own transport it goes as the bytes it will be on the wire (an `httpx.Request` alone costs as much CPU as
the rest of sending it).
"""

from __future__ import annotations

import httpx

from gateway.engine_transport import EngineTransport, Origin


class _Target:
    """A parsed URL, and for plain HTTP its origin and the start of the request head."""

    __slots__ = ("origin", "prefix", "url")

    def __init__(self, url: str) -> None:
        self.url = httpx.URL(url)
        self.origin: Origin | None = None
        self.prefix = b""
        if self.url.scheme == "http":
            self.origin = (self.url.host, self.url.port or 80)
            self.prefix = b"POST %s HTTP/1.1\r\nHost: %s\r\n" % (self.url.raw_path, self.url.netloc)


class EngineClient:
    """POSTs to engine URLs through one transport (the app's `EngineTransport`, or a test's)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, max_urls: int = 1024) -> None:
        self.transport = transport
        self._urls: dict[str, _Target] = {}
        self._own = transport if isinstance(transport, EngineTransport) else None
        self._max_urls = max_urls

    def _url(self, url: str) -> _Target:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= self._max_urls:  # replicas come and go with reloads: never grow without bound
                self._urls.clear()
            parsed = self._urls[url] = _Target(url)
        return parsed

    async def post(self, url: str, body: bytes, headers: dict[str, str], connect_s: float) -> httpx.Response:
        """Send `body`; the response's body is left to stream. `connect_s` bounds the wait for a connection."""
        timeout = {"connect": connect_s, "read": None, "write": connect_s, "pool": connect_s}
        target = self._url(url)
        if self._own is not None and target.origin is not None:
            lines = [target.prefix]
            for name, value in headers.items():
                if "\r" in value or "\n" in value:
                    raise httpx.LocalProtocolError(f"a line break in the {name} header")
                lines.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
            lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
            lines.append(body)
            return await self._own.open(target.origin, b"".join(lines), timeout)
        request = httpx.Request("POST", target.url, content=body, headers=headers, extensions={"timeout": timeout})
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response
