"""The HTTP api: thin handlers that validate, call the service, and map results to responses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from gateway.auth import Caller
from gateway.errors import APIError
from gateway.protocol import ChatCompletionRequest, CompletionRequest
from gateway.registry import ROUTED_MODEL
from gateway.serving import CompletionService
from gateway.state import GatewayState


async def get_state(request: Request) -> GatewayState:
    """The app's GatewayState (async, as are all dependencies: FastAPI runs sync ones in a thread pool)."""
    state: GatewayState = request.app.state.coe
    return state


StateDep = Annotated[GatewayState, Depends(get_state)]


async def get_service(state: StateDep) -> CompletionService:
    """The completion service, refusing while the gateway starts or drains."""
    if state.draining or state.service is None:
        raise APIError(503, "The gateway is not accepting requests (starting or shutting down).",
                       code="unavailable", headers={"Retry-After": "5"})
    return state.service


async def get_caller(request: Request, state: StateDep) -> Caller | None:
    """The authenticated caller when API keys are on; None when they are off."""
    if state.keys is None:
        return None
    return state.keys.authenticate(request.headers.get("authorization"))


ServiceDep = Annotated[CompletionService, Depends(get_service)]
CallerDep = Annotated[Caller | None, Depends(get_caller)]


def _body_schema(model: type[Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def build_api() -> APIRouter:
    """The route table."""
    api = APIRouter()

    @api.post("/v1/chat/completions", openapi_extra=_body_schema(ChatCompletionRequest))
    async def chat_completions(request: Request, caller: CallerDep, service: ServiceDep) -> Response:
        allowed = caller.allowed if caller else None
        return await service.handle(request, "chat", ChatCompletionRequest, "/chat/completions", allowed)

    @api.post("/v1/completions", openapi_extra=_body_schema(CompletionRequest))
    async def completions(request: Request, caller: CallerDep, service: ServiceDep) -> Response:
        allowed = caller.allowed if caller else None
        return await service.handle(request, "completions", CompletionRequest, "/completions", allowed)

    @api.get("/v1/models")
    async def list_models(state: StateDep, caller: CallerDep) -> dict[str, Any]:
        created = int(state.started_at)
        allowed = caller.allowed if caller else None
        experts = [e for e in state.registry.experts if allowed is None or e.name in allowed]
        data = [{"id": ROUTED_MODEL, "object": "model", "created": created, "owned_by": "coe",
                 "description": "Routed: the router picks the expert for each request"}]
        data += [{"id": e.name, "object": "model", "created": created, "owned_by": "coe",
                  "description": e.description, "categories": e.categories} for e in experts]
        return {"object": "list", "data": data}

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/ready")
    async def ready(state: StateDep) -> JSONResponse:
        experts = state.health.snapshot()
        up = any(e["up"] for e in experts.values())
        is_ready = up and state.service is not None and not state.draining
        body = {"status": "ready" if is_ready else "not_ready", "draining": state.draining,
                "router_loaded": state.router is not None, "experts": experts}
        return JSONResponse(body, status_code=200 if is_ready else 503)

    @api.get("/metrics")
    async def metrics(state: StateDep) -> Response:
        return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return api

