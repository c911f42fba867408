"""Browsers: CORS preflights and headers as vLLM gives them (closed by default), and as configured."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.fixtures_gateway import FakeStack

PREFLIGHT = {"origin": "https://chat.example", "access-control-request-method": "POST",
             "access-control-request-headers": "authorization, content-type"}
CHAT = {"model": "code", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def test_no_origin_is_allowed_until_one_is_listed(fake_stack: FakeStack) -> None:
    with httpx.Client(base_url=fake_stack.url, timeout=10) as client:
        preflight = client.options("/v1/chat/completions", headers=PREFLIGHT)
        assert preflight.status_code == 400 and "access-control-allow-origin" not in preflight.headers
        answer = client.post("/v1/chat/completions", json=CHAT, headers={"origin": "https://chat.example"})
        assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def test_any_origin(stack_factory: Callable[..., FakeStack]) -> None:
    stack = stack_factory(cors_allowed_origins=["*"])
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        preflight = client.options("/v1/chat/completions", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
        assert "access-control-allow-credentials" not in preflight.headers
        streamed = client.post("/v1/chat/completions", json=CHAT, headers={"origin": "https://chat.example"})
        assert streamed.status_code == 200 and streamed.headers["access-control-allow-origin"] == "*"
        assert streamed.text.rstrip().endswith("data: [DONE]")
        plain = client.post("/v1/chat/completions", json=CHAT)  # no Origin: not a browser, no CORS headers
        assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


def test_listed_origins_only(stack_factory: Callable[..., FakeStack]) -> None:
    stack = stack_factory(cors_allowed_origins=["https://chat.example"], cors_allow_credentials=True)
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        allowed = client.options("/v1/chat/completions", headers=PREFLIGHT)
        assert allowed.headers["access-control-allow-origin"] == "https://chat.example"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        other = client.options("/v1/chat/completions", headers={**PREFLIGHT, "origin": "https://evil.example"})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
