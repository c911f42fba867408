"""Overload, circuit breaking, body limits and API keys, through a real server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.auth import hash_key
from tests.fixtures_gateway import FakeStack
from tests.observe import at_baseline, sample, wait_until

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "write python"}]


def test_body_over_the_limit_is_413(stack_factory: Callable[..., FakeStack]) -> None:
    stack = stack_factory(max_body_bytes=1000)
    declared = httpx.post(f"{stack.url}{CHAT}", timeout=10,
                          json={"model": "code", "messages": [{"role": "user", "content": "x" * 5000}]})
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "request_too_large"

    def chunks():  # no content-length: the limit is enforced while reading
        for _ in range(100):
            yield b"x" * 100

    chunked = httpx.post(f"{stack.url}{CHAT}", content=chunks(), timeout=10)
    assert chunked.status_code == 413
    assert stack.engines["code"].stats.requests == 0


def test_full_expert_answers_429_and_routed_requests_go_elsewhere(stack_factory: Callable[..., FakeStack]) -> None:
    stack = stack_factory(max_concurrency=1, max_queue=0)
    engine = stack.engines["code"]
    engine.behaviour.tokens, engine.behaviour.gap_s = 40, 0.05
    slow = threading.Thread(target=lambda: httpx.post(
        f"{stack.url}{CHAT}", timeout=30, json={"model": "code", "stream": True, "messages": USER}))
    slow.start()
    assert wait_until(lambda: engine.stats.active == 1)
    pinned = httpx.post(f"{stack.url}{CHAT}", timeout=10, json={"model": "code", "messages": USER})
    assert pinned.status_code == 429 and pinned.headers["retry-after"] == "1"
    assert pinned.json()["error"]["code"] == "expert_overloaded"
    routed = httpx.post(f"{stack.url}{CHAT}", timeout=10, json={"model": "auto", "messages": USER})
    assert routed.status_code == 200 and routed.headers["x-coe-route-reason"] == "failover"
    slow.join(30)
    assert wait_until(lambda: at_baseline(stack))


def test_breaker_marks_an_expert_down_and_routing_skips_it(stack_factory: Callable[..., FakeStack]) -> None:
    stack = stack_factory(breaker_failures=2, breaker_cooldown_s=60)
    stack.engines["code"].behaviour.fault = "status_500"
    for _ in range(2):
        assert httpx.post(f"{stack.url}{CHAT}", timeout=10, json={"model": "auto", "messages": USER}).status_code == 200
    assert sample(stack, "coe_expert_up", expert="code") == 0
    ready = httpx.get(f"{stack.url}/ready", timeout=10).json()
    assert ready["experts"]["code"]["state"] == "open" and ready["status"] == "ready"
    calls_before = stack.engines["code"].stats.requests
    response = httpx.post(f"{stack.url}{CHAT}", timeout=10, json={"model": "auto", "messages": USER})
    assert response.status_code == 200 and response.headers["x-coe-expert"] != "code"
    assert stack.engines["code"].stats.requests == calls_before  # skipped, not tried


def test_probe_brings_an_expert_back(stack_factory: Callable[..., FakeStack]) -> None:
    stack = stack_factory(breaker_failures=1, breaker_cooldown_s=60, probe_interval_s=0.2)
    stack.engines["code"].behaviour.fault = "status_500"
    httpx.post(f"{stack.url}{CHAT}", timeout=10, json={"model": "code", "messages": USER})
    # The breaker opened on the 500 (counted, so a fast probe cannot hide it), then the probe closed it.
    assert stack.state.health.snapshot()["code"]["times_opened"] == 1
    assert wait_until(lambda: sample(stack, "coe_expert_up", expert="code") == 1)  # /models still answers
    assert stack.state.health.snapshot()["code"]["state"] == "closed"


def test_retry_budget_caps_failovers(stack_factory: Callable[..., FakeStack]) -> None:
    stack = stack_factory(dead=("code",), retry_budget_min=1, retry_budget_ratio=0.0, breaker_failures=100)
    first = httpx.post(f"{stack.url}{CHAT}", timeout=10, json={"model": "auto", "messages": USER})
    assert first.status_code == 200 and first.headers["x-coe-route-reason"] == "failover"
    second = httpx.post(f"{stack.url}{CHAT}", timeout=10, json={"model": "auto", "messages": USER})
    assert second.status_code == 503 and second.headers["retry-after"]


@pytest.fixture
def keyed_stack(stack_factory: Callable[..., FakeStack], tmp_path: Path) -> FakeStack:
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "keys:\n"
        f"  - {{name: alice, sha256: {hash_key('sk-alice')}}}\n"
        f"  - {{name: bob, sha256: {hash_key('sk-bob')}, allowed_experts: [math], requests_per_minute: 3}}\n"
    )
    return stack_factory(api_keys_file=keys)


def test_api_keys(keyed_stack: FakeStack, caplog: pytest.LogCaptureFixture) -> None:
    url = f"{keyed_stack.url}{CHAT}"

    def post(key: str | None, model: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(url, timeout=10, headers=headers, json={"model": model, "messages": USER})

    assert post(None, "code").status_code == 401
    assert post("sk-wrong", "code").json()["error"]["code"] == "invalid_api_key"
    assert post("sk-alice", "code").status_code == 200
    assert post("sk-bob", "code").status_code == 403
    routed = post("sk-bob", "auto")
    assert routed.status_code == 200 and routed.headers["x-coe-expert"] == "math"
    models = httpx.get(f"{keyed_stack.url}/v1/models", headers={"authorization": "Bearer sk-bob"}, timeout=10)
    assert [m["id"] for m in models.json()["data"]] == ["auto", "math"]
    assert post("sk-bob", "math").status_code == 200  # the third completion request (/v1/models is not counted)
    limited = post("sk-bob", "math")  # the fourth within a minute
    assert limited.status_code == 429 and limited.headers["retry-after"]
    assert "sk-alice" not in caplog.text and "sk-bob" not in caplog.text
    assert "sk-" not in httpx.get(f"{keyed_stack.url}/metrics", timeout=10).text


def test_openai_shaped_404_and_405_for_unknown_paths(fake_stack: FakeStack) -> None:
    missing = httpx.get(f"{fake_stack.url}/v1/nothing", timeout=10)
    assert missing.status_code == 404 and set(missing.json()["error"]) == {"message", "type", "param", "code"}
    wrong = httpx.get(f"{fake_stack.url}{CHAT}", timeout=10)
    assert wrong.status_code == 405 and "error" in wrong.json()
