"""Run the gateway under uvicorn, with a graceful drain on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from gateway import request_log
from gateway.app import create_app
from gateway.registry import RegistryError
from gateway.settings import Settings
from gateway.state import GatewayState


class DrainingServer(uvicorn.Server):
    """On the first exit signal, turn `/ready` to 503 and give running streams the grace period."""

    def __init__(self, config: uvicorn.Config, state: GatewayState) -> None:
        super().__init__(config)
        self._state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._state.request_drain(self._state.settings.shutdown_grace_s)
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if sig == signal.SIGTERM and isinstance(captured, list) and sig in captured:
            # uvicorn re-raises the signal after shutting down; a drained SIGTERM is a clean exit (code 0).
            captured.remove(sig)


def configure_logging(settings: Settings) -> None:
    """Plain lines for the gateway's own log; one bare JSON object per line for the request log."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # else every upstream call and health probe is logged
    request_log.install(logging.INFO if settings.request_log else logging.WARNING)


def app_from_environment() -> FastAPI:
    """The app factory uvicorn's worker processes call (settings from `COE_*`)."""
    settings = Settings()
    configure_logging(settings)
    app = create_app(settings)
    drain_before_exit(app.state.coe)
    return app


def drain_before_exit(state: GatewayState) -> None:
    """In a worker, start the drain whenever uvicorn's own exit handler gets SIGTERM or SIGINT.

    A worker's server is uvicorn's, not `DrainingServer`; it loads the app after installing its signal
    handlers, so they are wrapped here: the same drain as one process, then uvicorn's own shutdown.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        uvicorn_handler = signal.getsignal(sig)
        if not callable(uvicorn_handler):
            continue

        def handler(signum: int, frame: FrameType | None, then: Callable[..., Any] = uvicorn_handler) -> None:
            state.request_drain(state.settings.shutdown_grace_s)
            then(signum, frame)

        signal.signal(sig, handler)


def run_workers(settings: Settings) -> int:
    """Several uvicorn workers, each with its own app; metrics go through a shared multiprocess directory."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="coe-metrics-")
    os.environ["COE_EXPERTS"] = str(settings.experts.resolve())  # the workers read settings from here
    uvicorn.run(
        "gateway.server:app_from_environment", factory=True, host=settings.host, port=settings.port,
        workers=settings.workers, log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
    )
    return 0


def run_server(settings: Settings) -> int:
    """Serve until stopped; 0 on a clean shutdown, 2 on a bad configuration."""
    if settings.workers > 1:
        configure_logging(settings)
        return run_workers(settings)
    try:
        app = create_app(settings)
    except (RegistryError, ValueError) as exc:
        print(f"coe: {exc}", file=sys.stderr)
        return 2
    artifact = app.state.coe.registry.router.artifact
    if not (artifact / "meta.json").is_file():
        print(f"coe: no router artifact at {artifact} (`make router-artifact` or `coe router train` makes one)",
              file=sys.stderr)
        return 2
    configure_logging(settings)
    return serve_app(app, settings)


def serve_app(app: FastAPI, settings: Settings) -> int:
    """Run a built gateway app until SIGTERM/SIGINT; 0 after a clean drain."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
        lifespan="on",
    )
    state: GatewayState = app.state.coe
    server = DrainingServer(config, state)
    reloader = state.reloader
    previous = None
    if reloader is not None and hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGHUP, lambda sig, frame: reloader.request_from_signal())
    try:
        server.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)
    return 0 if server.started else 1
