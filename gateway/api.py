"""The HTTP api: thin handlers that authenticate, call the service, and map results to responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from gateway.direct_routes import DirectRoute, Handler
from gateway.errors import APIError, model_not_found
from gateway.identity import Principal
from gateway.openapi import ChatCompletionBody, CompletionBody
from gateway.registry import ROUTED_MODEL, ExpertConfig
from gateway.serving import CompletionService, request_id_of
from gateway.state import GatewayState
from gateway.versions import engine_version


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


async def get_caller(request: Request, state: StateDep) -> Principal | None:
    """The authenticated caller (an API key or a bearer token); None when authentication is off."""
    return await state.access.authenticate(request.headers.get("authorization"), request_id_of(request))


async def require_admin(caller: Annotated[Principal | None, Depends(get_caller)], state: StateDep) -> None:
    """`/admin/*`: only a caller whose role has `admin: true` (open only when authentication is off)."""
    if state.access.authenticator.enabled and not (caller and caller.admin):
        raise APIError(403, "Your role may not use the admin endpoints.", code="admin_required")


CallerDep = Annotated[Principal | None, Depends(get_caller)]


async def _caller_and_service(request: Request) -> tuple[Principal | None, CompletionService]:
    """The caller, then the service, as the dependencies above would give them; called directly by the
    completion handlers because FastAPI's dependency solver costs more CPU than the rest of routing."""
    state: GatewayState = request.app.state.coe
    caller = await get_caller(request, state)
    return caller, await get_service(state)


def _direct_post(api: APIRouter, path: str, **options: Any) -> Callable[[Handler], Handler]:
    """Register `POST path` as a DirectRoute (served by `DirectRoutes` ahead of the app's routing)."""

    def register(handler: Handler) -> Handler:
        api.add_api_route(path, handler, methods=["POST"], route_class_override=DirectRoute, **options)
        return handler

    return register


def _body_schema(model: type[Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _visible(state: GatewayState, caller: Principal | None) -> list[ExpertConfig]:
    allowed = caller.allowed if caller else None
    return [e for e in state.registry.experts if allowed is None or e.name in allowed]


def build_api() -> APIRouter:
    """The route table."""
    api = APIRouter()

    @_direct_post(api, "/v1/chat/completions", openapi_extra=_body_schema(ChatCompletionBody))
    async def chat_completions(request: Request) -> Response:
        caller, service = await _caller_and_service(request)
        return await service.chat(request, caller)

    @_direct_post(api, "/v1/chat/completions/batch")
    async def chat_batch(request: Request) -> Response:
        caller, service = await _caller_and_service(request)
        return await service.chat_batch(request, caller)

    @_direct_post(api, "/v1/completions", openapi_extra=_body_schema(CompletionBody))
    async def completions(request: Request) -> Response:
        caller, service = await _caller_and_service(request)
        return await service.completions(request, caller)

    @_direct_post(api, "/v1/responses")
    async def responses(request: Request) -> Response:
        caller, service = await _caller_and_service(request)
        return await service.responses(request, caller)

    @_direct_post(api, "/v1/messages")
    async def messages(request: Request) -> Response:
        caller, service = await _caller_and_service(request)
        return await service.messages(request, caller)

    @_direct_post(api, "/v1/messages/count_tokens")
    async def count_tokens(request: Request) -> Response:
        caller, service = await _caller_and_service(request)
        return await service.count_tokens(request, caller)

    @_direct_post(api, "/tokenize")
    async def tokenize(request: Request) -> Response:
        caller, service = await _caller_and_service(request)
        return await service.tokenize(request, caller)

    @_direct_post(api, "/detokenize")
    async def detokenize(request: Request) -> Response:
        caller, service = await _caller_and_service(request)
        return await service.detokenize(request, caller)

    @api.get("/v1/models")
    async def list_models(state: StateDep, caller: CallerDep) -> dict[str, Any]:
        created, visible = int(state.started_at), _visible(state, caller)
        data = [state.cards.routed_card(visible, created)] + [state.cards.card(e, created) for e in visible]
        return {"object": "list", "data": data}

    @api.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
        created, visible = int(state.started_at), _visible(state, caller)
        if model_id == ROUTED_MODEL:
            return state.cards.routed_card(visible, created)
        expert = next((e for e in visible if e.name == model_id), None)
        if expert is None:
            raise model_not_found(model_id)
        return state.cards.card(expert, created)

    @api.get("/version")
    async def version(state: StateDep) -> Response:
        """The fallback expert's engine version (what a vLLM client asks), with the gateway's own."""
        return await engine_version(state)

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/ping", operation_id="ping_get")  # one id per method: the schema warns on a shared one
    @api.post("/ping", operation_id="ping_post")
    async def ping() -> Response:
        """vLLM's (and SageMaker's) liveness probe: 200 with an empty body, as the engine answers it."""
        return Response(status_code=200)

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
        # Rendering every series (merging worker files when there are several) is CPU work: off the event loop.
        text = await anyio.to_thread.run_sync(state.metrics.exposition)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return api

