"""The app factory: builds a gateway from settings, a registry and injectable parts; nothing runs at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits

from gateway.access import Access
from gateway.admin_api import build_admin_api
from gateway.api import build_api
from gateway.auth import KeyRing
from gateway.contention import Contention
from gateway.cors import BrowserCORS
from gateway.direct_routes import DirectRoutes
from gateway.dispatch import Dispatcher
from gateway.engine_client import EngineClient
from gateway.engine_transport import EngineTransport
from gateway.errors import APIError
from gateway.health import HealthBoard
from gateway.limits import ExpertLimiter, RetryBudget
from gateway.loop_lag import LoopLag
from gateway.metrics import GatewayMetrics
from gateway.model_cards import ModelCards
from gateway.registry import Registry, load_registry, warn_unclaimed
from gateway.relay import ActiveStreams
from gateway.reload import Reloader
from gateway.resume import Resumer
from gateway.routing import Router
from gateway.serving import CompletionService
from gateway.sessions import SessionRouter
from gateway.settings import Settings
from gateway.state import GatewayState
from gateway.work_budget import WorkBudget

log = logging.getLogger(__name__)

RouterLoader = Callable[[Path], Router]


def load_query_router(artifact: Path) -> Router:
    """The trained router from its artifact folder, warmed so the first request is not slow."""
    from router_model.cascade import load_router

    if not (artifact / "meta.json").is_file():
        raise FileNotFoundError(f"no router artifact at {artifact} (train one with `coe router train`)")
    router = load_router(artifact)
    router.warm()
    return router


def _install_error_handlers(app: FastAPI) -> None:
    """Every error leaves in the OpenAI shape, including FastAPI's own 404/405/422."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = {404: f"Unknown path {request.url.path}", 405: "Method not allowed"}.get(exc.status_code)
        return APIError(exc.status_code, message or str(exc.detail)).response(dict(exc.headers or {}))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first: dict[str, Any] = next(iter(exc.errors()), {})
        param = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        detail = first.get("msg", "not what this endpoint accepts")
        return APIError(400, f"Invalid value for '{param or 'request'}': {detail}.", param=param).response()

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return APIError(500, "The gateway failed unexpectedly.", code="internal_error").response()

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


def create_app(
    settings: Settings,
    registry: Registry | None = None,
    router_loader: RouterLoader | None = load_query_router,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """A fresh gateway app; the router is loaded and the HTTP client opened in its lifespan."""
    registry = registry or load_registry(settings.experts)
    metrics = GatewayMetrics([e.name for e in registry.experts])
    cards = ModelCards()
    health = HealthBoard(
        registry.experts, settings.breaker_failures, settings.breaker_cooldown_s,
        on_change=lambda name, up: metrics.expert_up.labels(name).set(1 if up else 0),
        on_replica=lambda name, replica, up: metrics.replica_up.labels(name, replica).set(1 if up else 0),
        on_models=cards.observe,
    )
    keys = KeyRing.load(settings.api_keys_file) if settings.api_keys_file else None
    access = Access.build(settings.security, keys, metrics)
    state = GatewayState(settings, registry, metrics, health, ActiveStreams(), keys, access, cards=cards)
    state.sessions = SessionRouter(registry.router.session, metrics.registry)
    state.reloader = Reloader(state, router_loader)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        state.loop_lag = LoopLag(settings.router_busy_lag_ms)
        state.second_stage_budget = WorkBudget(settings.router_second_stage_share)
        state.contention = Contention(settings.router_max_contention)
        # One BLAS/OpenMP thread per routing call (calls run in parallel worker threads instead); BLAS limits
        # are process-wide, so they are set for the app's life and restored when it stops.
        blas_limits = threadpool_limits(limits=1)
        try:
            if router_loader is not None:
                state.router = await anyio.to_thread.run_sync(router_loader, registry.router.artifact)
                warn_unclaimed(registry, state.router.categories)
            engines = transport or EngineTransport(settings.max_connections)
            async with access.running(), httpx.AsyncClient(transport=engines, timeout=None) as client:
                limiters = {
                    e.name: ExpertLimiter(e.name, e.max_concurrency or settings.max_concurrency,
                                          settings.max_queue, settings.queue_timeout_s)
                    for e in registry.experts
                }
                budget = RetryBudget(settings.retry_budget_ratio, settings.retry_budget_min)
                dispatcher = Dispatcher(settings, EngineClient(engines), metrics, health, limiters, budget)
                state.client = client
                state.service = CompletionService(
                    settings, state.selector(registry, state.router), dispatcher, metrics,
                    state.streams, access, state.sessions, Resumer(registry, dispatcher, health, metrics),
                )
                async with anyio.create_task_group() as tg:
                    tg.start_soon(health.probe_forever, client, settings.probe_interval_s,
                                  settings.connect_timeout_s)
                    tg.start_soon(state.loop_lag.run)
                    try:
                        yield
                    finally:
                        tg.cancel_scope.cancel()
                state.service = None
                state.client = None
        finally:
            blas_limits.restore_original_limits()

    app = FastAPI(title="CoE gateway", version="0.1.0", lifespan=lifespan)
    app.state.coe = state
    app.add_middleware(BrowserCORS, settings=settings)
    app.add_middleware(DirectRoutes, routes=app.router.routes)  # outermost: the completion endpoints' hot path
    app.include_router(build_api())
    app.include_router(build_admin_api())
    _install_error_handlers(app)
    return app
