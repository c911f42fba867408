"""`GET /version`: what a vLLM client reads there, from the fallback expert's engine, plus the gateway's own."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

import httpx
from starlette.responses import JSONResponse, Response

from gateway.errors import APIError
from gateway.state import GatewayState


def gateway_version() -> str:
    """The installed coe-gateway version."""
    try:
        return version("coe-gateway")
    except PackageNotFoundError:
        return "unknown"


async def engine_version(state: GatewayState) -> Response:
    """The engine's `{"version": ...}` with `coe_gateway` added; 503 when no engine answers."""
    expert = state.registry.expert(state.registry.fallback)
    if state.client is None or expert is None:
        raise APIError(503, "The gateway is not ready.", code="unavailable", headers={"Retry-After": "5"})
    try:
        answer = await state.client.get(f"{expert.root_url}/version", timeout=state.settings.connect_timeout_s)
        body = json.loads(answer.content) if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise APIError(503, f"The expert '{expert.name}' did not tell its version.", code="expert_unavailable",
                       headers={"Retry-After": "2"})
    return JSONResponse({**body, "coe_gateway": gateway_version()})
