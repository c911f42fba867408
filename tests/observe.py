"""Reading a running gateway's state in tests: metric samples, SSE events, the upstream pool."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.fixtures_gateway import FakeStack


def sample(stack: FakeStack, name: str, **labels: str) -> float:
    """One sample's value from the gateway's own registry (0 when absent)."""
    value = stack.state.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def upstream_pool(stack: FakeStack) -> list[Any]:
    """The connections of the gateway's httpx pools to the engines."""
    upstream = stack.state.upstream
    assert upstream is not None
    return [c for client in upstream.clients for c in client._transport._pool.connections]  # type: ignore[attr-defined]


def busy_upstream_connections(stack: FakeStack) -> int:
    """Connections of the gateway's httpx pool that are not idle (a leak if > 0 when nothing runs)."""
    return sum(1 for connection in upstream_pool(stack) if not connection.is_idle())


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll until `condition()` holds; False on timeout (the caller asserts)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def at_baseline(stack: FakeStack) -> bool:
    """Nothing in flight anywhere: gauges at zero, engines idle, no busy upstream connection or pool lease."""
    inflight = sum(sample(stack, "coe_inflight_requests", expert=name) for name in stack.engines)
    engines_idle = all(engine.stats.active == 0 for engine in stack.engines.values())
    leases = sum(stack.state.upstream.in_flight) if stack.state.upstream is not None else 0
    return (inflight == 0 and engines_idle and busy_upstream_connections(stack) == 0 and leases == 0
            and len(stack.state.streams) == 0)


def sse_events(body: bytes) -> list[Any]:
    """The data of each event: parsed JSON, or the string '[DONE]'."""
    events: list[Any] = []
    for block in body.split(b"\n\n"):
        if block.startswith(b"data: "):
            data = block[6:]
            events.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return events
