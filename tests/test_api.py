"""The route table beyond completions: models, the engine's own endpoints, health and readiness."""

from __future__ import annotations

import asyncio

import httpx
from starlette.requests import Request

from gateway.serving import request_id_of
from tests.fixtures_gateway import FakeStack


def test_one_model_card_per_id(fake_stack: FakeStack) -> None:
    card = httpx.get(f"{fake_stack.url}/v1/models/code", timeout=10).json()
    assert (card["id"], card["object"], card["categories"]) == ("code", "model", ["code"])
    assert httpx.get(f"{fake_stack.url}/v1/models/auto", timeout=10).json()["id"] == "auto"
    missing = httpx.get(f"{fake_stack.url}/v1/models/gpt-9", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_tokenize_goes_to_the_named_experts_engine(fake_stack: FakeStack) -> None:
    answer = httpx.post(f"{fake_stack.url}/tokenize", json={"model": "math", "prompt": "one two three"}, timeout=10)
    assert answer.status_code == 200 and answer.json()["count"] == 3
    assert answer.headers["x-coe-expert"] == "math"
    assert fake_stack.engines["math"].stats.last_body["model"] == fake_stack.engines["math"].served_model


def test_tokenize_routes_like_a_request(fake_stack: FakeStack) -> None:
    messages = [{"role": "user", "content": "fix my python bug"}]
    answer = httpx.post(f"{fake_stack.url}/tokenize", json={"messages": messages}, timeout=10)
    assert answer.status_code == 200 and answer.headers["x-coe-expert"] == "code"


def test_detokenize(fake_stack: FakeStack) -> None:
    answer = httpx.post(f"{fake_stack.url}/detokenize", json={"model": "code", "tokens": [1, 2]}, timeout=10)
    assert answer.json() == {"prompt": "w1 w2"}


def test_version_is_the_engines_with_the_gateways(fake_stack: FakeStack) -> None:
    version = httpx.get(f"{fake_stack.url}/version", timeout=10).json()
    assert version["version"] == "fake-0.1" and version["coe_gateway"]


def test_health_and_ready(fake_stack: FakeStack) -> None:
    assert httpx.get(f"{fake_stack.url}/health", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{fake_stack.url}/ready", timeout=10)
    assert ready.status_code == 200 and set(ready.json()["experts"]) == set(fake_stack.engines)


def test_model_cards_carry_the_engines_context_length(fake_stack: FakeStack) -> None:
    fake_stack.engines["math"].max_model_len = 1024
    state = fake_stack.state
    probe = state.health.probe_once(state.client, 5.0)
    asyncio.run_coroutine_threadsafe(probe, state.loop).result(10)  # on the gateway's own loop, as it runs
    listed = {card["id"]: card for card in httpx.get(f"{fake_stack.url}/v1/models", timeout=10).json()["data"]}
    assert (listed["code"]["root"], listed["code"]["max_model_len"]) == ("upstream-code", 2048)
    assert listed["math"]["max_model_len"] == 1024
    assert listed["auto"]["max_model_len"] == 1024  # any expert may answer a routed request
    assert httpx.get(f"{fake_stack.url}/v1/models/math", timeout=10).json() == listed["math"]


def test_a_request_keeps_one_id_from_authentication_to_the_answer() -> None:
    anonymous = Request({"type": "http", "headers": []})
    first = request_id_of(anonymous)
    assert len(first) == 32 and request_id_of(anonymous) == first  # made once, not once per caller
    given = Request({"type": "http", "headers": [(b"x-request-id", b"client-7")]})
    assert request_id_of(given) == "client-7"
    odd = Request({"type": "http", "headers": [(b"x-request-id", b"no spaces allowed")]})
    assert request_id_of(odd) != "no spaces allowed" and request_id_of(odd) == request_id_of(odd)
