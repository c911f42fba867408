"""A gateway in front of an expert with several fake-engine replicas (and one plain expert to fail over to)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from coe_testing.fake_engine import FakeEngine
from coe_testing.routers import KeywordRouter
from coe_testing.servers import ServerThread
from gateway.app import create_app
from gateway.registry import Registry
from tests.fixtures_gateway import FakeStack, make_settings


def replica_registry(code_urls: list[str], general_url: str, **extra: Any) -> Registry:
    """`code` served by the given replicas, `general` by one engine; both serve their own upstream model."""
    return Registry.model_validate({
        "fallback": "general",
        "router": {"min_confidence": 0.5},
        "experts": [
            {"name": "code", "urls": code_urls, "model": "upstream-code", "categories": ["code"]},
            {"name": "general", "url": general_url, "model": "upstream-general", "categories": ["general", "math"]},
        ],
        **extra,
    })


class ReplicaStacks:
    """Builds stacks whose engines are `code0`, `code1`, ... (replicas of `code`) and `general`; stops them all."""

    def __init__(self) -> None:
        self.started: list[ServerThread] = []

    def __call__(self, replicas: int = 2, registry: dict[str, Any] | None = None, **overrides: Any) -> FakeStack:
        names = [f"code{i}" for i in range(replicas)] + ["general"]
        engines = {n: FakeEngine("upstream-general" if n == "general" else "upstream-code") for n in names}
        servers = {n: ServerThread(engine, lifespan="off").start() for n, engine in engines.items()}
        self.started.extend(servers.values())
        urls = [f"{servers[f'code{i}'].url}/v1" for i in range(replicas)]
        router = KeywordRouter()
        reg = replica_registry(urls, f"{servers['general'].url}/v1", **(registry or {}))
        app = create_app(make_settings(**overrides), reg, router_loader=lambda _: router)
        gateway = ServerThread(app).start()
        self.started.append(gateway)
        return FakeStack(engines, servers, gateway, router, reg)

    def restart(self, stack: FakeStack, name: str) -> None:
        """Serve engine `name` again on the port it had (after `stack.engine_servers[name].stop()`)."""
        old = stack.engine_servers[name]
        server = ServerThread(stack.engines[name], port=old.port, lifespan="off").start()
        self.started.append(server)
        stack.engine_servers[name] = server

    def stop_all(self) -> None:
        for server in reversed(self.started):
            server.stop()


@pytest.fixture
def replica_stacks() -> Iterator[ReplicaStacks]:
    """A builder of replica stacks; everything it started is stopped at teardown."""
    stacks = ReplicaStacks()
    yield stacks
    stacks.stop_all()
