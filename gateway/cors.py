"""Cross-origin requests from browsers, answered as vLLM answers them: the same flags, defaults and middleware."""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.settings import Settings


class BrowserCORS:
    """Starlette's CORS middleware for requests that carry an `Origin`; the rest skip it, since it wraps every
    message sent (each streamed chunk) and only browsers send an `Origin`."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app, allow_origins=settings.cors_allowed_origins, allow_credentials=settings.cors_allow_credentials,
            allow_methods=settings.cors_allowed_methods, allow_headers=settings.cors_allowed_headers,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(name == b"origin" for name, _ in scope["headers"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
