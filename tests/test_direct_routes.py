"""The completion endpoints' hot path: a plain POST goes straight to its handler, everything else through the app."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.app import create_app
from gateway.direct_routes import DirectRoute, DirectRoutes
from gateway.errors import APIError
from tests.fixtures_gateway import EXPERTS, make_registry, make_settings


def _app() -> tuple[FastAPI, list[str]]:
    """An app with one DirectRoute; `seen` names who answered each request (the handler, or the app's routing)."""
    seen: list[str] = []
    app = FastAPI()

    async def handler(request: Request) -> Response:
        seen.append("direct" if "route" not in request.scope else "routed")  # the app's router sets `route`
        if request.headers.get("x-refuse"):
            raise APIError(401, "No key.", code="invalid_api_key")
        return JSONResponse({"body": (await request.body()).decode()})

    router = APIRouter()
    router.add_api_route("/v1/chat/completions", handler, methods=["POST"], route_class_override=DirectRoute)
    app.include_router(router)

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> Response:
        return exc.response()

    app.add_middleware(DirectRoutes, routes=app.router.routes)
    return app, seen


async def _post(app: FastAPI, path: str = "/v1/chat/completions", root_path: str = "",
                **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.post(path, content=b'{"a": 1}', headers=headers)


def test_a_plain_post_goes_straight_to_the_handler() -> None:
    app, seen = _app()
    answer = asyncio.run(_post(app))
    assert answer.status_code == 200 and answer.json() == {"body": '{"a": 1}'}
    assert seen == ["direct"]


def test_a_refusal_raised_by_the_handler_is_answered_in_the_openai_shape() -> None:
    app, seen = _app()
    answer = asyncio.run(_post(app, **{"x-refuse": "1"}))
    assert answer.status_code == 401 and seen == ["direct"]
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_browsers_and_mounted_apps_go_through_the_app() -> None:
    app, seen = _app()
    assert asyncio.run(_post(app, origin="https://chat.example")).status_code == 200
    assert seen == ["routed"]  # so the CORS middleware inside the app sees it
    assert asyncio.run(_post(app, root_path="/gw")).status_code == 200
    assert seen == ["routed", "routed"]
    assert asyncio.run(_post(app, path="/v1/other")).status_code == 404  # not a direct route: the app's 404


def test_the_gateways_completion_endpoints_are_direct_and_still_documented() -> None:
    app = create_app(make_settings(), make_registry(dict.fromkeys(EXPERTS, "http://127.0.0.1:9")), router_loader=None)
    direct = {r.path for r in app.router.routes if isinstance(r, DirectRoute)}
    assert {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages", "/tokenize"} <= direct
    schema = app.openapi()
    assert "requestBody" in schema["paths"]["/v1/chat/completions"]["post"]
    assert any(m.cls is DirectRoutes for m in app.user_middleware)
