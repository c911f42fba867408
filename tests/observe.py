"""Reading a running gateway's state in tests: metric samples, SSE events, the upstream transport."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from gateway.engine_transport import EngineTransport
from tests.fixtures_gateway import FakeStack


def sample(stack: FakeStack, name: str, **labels: str) -> float:
    """One sample's value from the gateway's own registry (0 when absent)."""
    value = stack.state.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def engine_transport(stack: FakeStack) -> EngineTransport:
    """The gateway's transport to the engines."""
    assert stack.state.client is not None
    transport = stack.state.client._transport  # type: ignore[attr-defined]
    assert isinstance(transport, EngineTransport)
    return transport


def busy_upstream_connections(stack: FakeStack) -> int:
    """Connections to the engines carrying a request or an unclosed response (a leak if > 0 when nothing runs)."""
    return engine_transport(stack).busy


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll until `condition()` holds; False on timeout (the caller asserts)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def at_baseline(stack: FakeStack) -> bool:
    """Nothing in flight anywhere: gauges at zero, engines idle, no busy upstream connection."""
    inflight = sum(sample(stack, "coe_inflight_requests", expert=name) for name in stack.engines)
    engines_idle = all(engine.stats.active == 0 for engine in stack.engines.values())
    return (inflight == 0 and engines_idle and busy_upstream_connections(stack) == 0
            and len(stack.state.streams) == 0)


def sse_events(body: bytes) -> list[Any]:
    """The data of each event: parsed JSON, or the string '[DONE]'."""
    events: list[Any] = []
    for block in body.split(b"\n\n"):
        if block.startswith(b"data: "):
            data = block[6:]
            events.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return events
