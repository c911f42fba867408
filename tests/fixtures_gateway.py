"""A gateway on real uvicorn in front of fake engines, built per test with the settings it needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from coe_testing.fake_engine import FakeEngine
from coe_testing.routers import KeywordRouter
from coe_testing.servers import ServerThread
from gateway.app import create_app
from gateway.registry import Registry
from gateway.settings import Settings
from gateway.state import GatewayState

EXPERTS = {"code": ["code"], "math": ["math"], "general": ["general", "multilingual"]}


@dataclass
class FakeStack:
    """Fake engines per expert, and the gateway in front of them."""

    engines: dict[str, FakeEngine]
    engine_servers: dict[str, ServerThread]
    gateway: ServerThread
    router: KeywordRouter
    registry: Registry

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def state(self) -> GatewayState:
        state: GatewayState = self.gateway.server.config.app.state.coe  # type: ignore[attr-defined]
        return state


def make_registry(urls: dict[str, str], **router: Any) -> Registry:
    """A registry with the EXPERTS above at the given base URLs; engines serve `upstream-<name>`."""
    return Registry.model_validate({
        "fallback": "general",
        "router": {"min_confidence": 0.5, **router},
        "experts": [
            {"name": name, "url": urls[name], "model": f"upstream-{name}", "categories": cats,
             "description": f"{name} expert"}
            for name, cats in EXPERTS.items()
        ],
    })


def make_settings(**overrides: Any) -> Settings:
    """Settings with test-sized timeouts, no environment involved."""
    base: dict[str, Any] = {
        "first_byte_timeout_s": 3.0, "stream_idle_timeout_s": 2.0, "total_timeout_s": 30.0,
        "connect_timeout_s": 1.0, "probe_interval_s": 3600.0, "shutdown_grace_s": 2.0,
    }
    return Settings(**{**base, **overrides})


@pytest.fixture
def stack_factory() -> Iterator[Callable[..., FakeStack]]:
    """Build stacks with chosen settings; everything started is stopped at teardown."""
    started: list[ServerThread] = []

    def build(
        dead: tuple[str, ...] = (), router: KeywordRouter | None = None, router_config: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> FakeStack:
        engines = {name: FakeEngine(f"upstream-{name}") for name in EXPERTS}
        servers = {name: ServerThread(engine, lifespan="off").start() for name, engine in engines.items()}
        started.extend(servers.values())
        urls = {name: f"{s.url}/v1" for name, s in servers.items()}
        for name in dead:
            servers[name].stop()  # nothing listens there any more
        chosen = router or KeywordRouter()
        registry = make_registry(urls, **(router_config or {}))
        app = create_app(make_settings(**overrides), registry, router_loader=lambda _: chosen)
        gateway = ServerThread(app).start()
        started.append(gateway)
        return FakeStack(engines, servers, gateway, chosen, registry)

    yield build
    for server in reversed(started):
        server.stop()


@pytest.fixture
def fake_stack(stack_factory: Callable[..., FakeStack]) -> FakeStack:
    """The default stack: three healthy fake experts."""
    return stack_factory()
