"""What one gateway app owns while it runs, reached by the handlers through `request.app.state.coe`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from gateway.access import Access
from gateway.auth import KeyRing
from gateway.contention import Contention
from gateway.health import HealthBoard
from gateway.loop_lag import LoopLag
from gateway.metrics import GatewayMetrics
from gateway.model_cards import ModelCards
from gateway.registry import Registry
from gateway.relay import ActiveStreams
from gateway.routing import ExpertSelector, Router
from gateway.serving import CompletionService
from gateway.sessions import SessionRouter
from gateway.settings import Settings
from gateway.work_budget import WorkBudget

if TYPE_CHECKING:
    from gateway.reload import Reloader


@dataclass
class GatewayState:
    """The app's long-lived parts; `service` and `router` appear once the lifespan has started."""

    settings: Settings
    registry: Registry
    metrics: GatewayMetrics
    health: HealthBoard
    streams: ActiveStreams
    keys: KeyRing | None
    access: Access
    router: Router | None = None
    service: CompletionService | None = None
    client: httpx.AsyncClient | None = None  # to the engines (over `engine_transport` unless a test injects one)
    sessions: SessionRouter | None = None
    reloader: Reloader | None = None
    draining: bool = False
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    loop_lag: LoopLag | None = None
    second_stage_budget: WorkBudget | None = None
    contention: Contention | None = None
    started_at: float = field(default_factory=time.time)
    cards: ModelCards = field(default_factory=ModelCards)  # the engines' model cards, fed by the health probe

    def selector(self, registry: Registry, router: Router | None) -> ExpertSelector:
        """A selector over this registry and router that shares the app's load signals (loop lag, CPU budget)."""
        return ExpertSelector(registry, router, loop_lag=self.loop_lag, budget=self.second_stage_budget,
                              contention=self.contention)

    def begin_drain(self, grace_s: float) -> None:
        """Stop taking requests; let running streams finish within `grace_s`."""
        self.draining = True
        self.streams.drain(asyncio.get_running_loop().time(), grace_s)

    def request_drain(self, grace_s: float) -> None:
        """`begin_drain` from a signal handler: hop onto the event loop first."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.begin_drain, grace_s)
        else:
            self.draining = True
