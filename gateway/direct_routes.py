"""The completion endpoints served without the framework's layers in between: the hot path of every request.

A completion request used to pass the exception, exit-stack and routing middleware, a path match against every
route and FastAPI's request wrapper (two exit stacks, an exception wrapper) before its handler ran, and each streamed
chunk passed two send wrappers on its way out: together more CPU than the handler's own work before the first byte.
The handlers of `DirectRoute`s take the request as it is and answer every error they expect themselves, so a plain
`POST` to one of their paths is handed to the handler here. Anything else (other methods and paths, a browser's
request with an `Origin`, an app mounted under a root path) goes through the app as before; the routes stay in the
app, so they are documented in the OpenAPI schema as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import APIError

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    """A documented route whose handler is given the request as it is (no dependency solving), and which
    `DirectRoutes` serves ahead of the app's own routing."""

    def get_route_handler(self) -> Handler:
        return self.endpoint


class DirectRoutes:
    """Middleware: `POST` to a DirectRoute's path goes straight to its handler; an APIError it raises (a refused
    caller) is answered in the OpenAI shape; any other exception reaches the app's server-error handler as before."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        # Built with the app's middleware, at its first request: every router has been included by then.
        self.handlers: dict[str, Handler] = {
            route.path: route.endpoint for route in routes
            if isinstance(route, DirectRoute) and route.methods == {"POST"}
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST" or scope.get("root_path") or _has_origin(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except APIError as error:
            response = error.response()
        await response(scope, receive, send)


def _has_origin(scope: Scope) -> bool:
    """Browsers' requests carry an `Origin`: those go through the CORS middleware."""
    return any(name == b"origin" for name, _ in scope["headers"])
