"""Per-expert metrics and the request log are exact after known traffic."""

from __future__ import annotations

import json
import logging

import httpx
import openai
import pytest

from tests.fixtures_gateway import FakeStack
from tests.observe import at_baseline, sample, wait_until


def test_counters_are_exact_after_mixed_traffic(fake_stack: FakeStack) -> None:
    client = openai.OpenAI(base_url=f"{fake_stack.url}/v1", api_key="x", max_retries=0)
    user = [{"role": "user", "content": "one two three four"}]
    for _ in range(3):
        list(client.chat.completions.create(model="code", messages=user, stream=True, max_tokens=5))
    for _ in range(2):
        client.chat.completions.create(model="math", messages=user, max_tokens=7)
    list(client.chat.completions.create(model="auto", stream=True,
                                        messages=[{"role": "user", "content": "solve the equation 2x=4"}]))
    client.completions.create(model="auto", prompt="fix my javascript bug", max_tokens=3)
    assert wait_until(lambda: at_baseline(fake_stack))

    assert sample(fake_stack, "coe_requests_total", expert="code", endpoint="chat", status="200") == 3
    assert sample(fake_stack, "coe_requests_total", expert="math", endpoint="chat", status="200") == 3
    assert sample(fake_stack, "coe_requests_total", expert="code", endpoint="completions", status="200") == 1
    # Output tokens equal the engine's usage: 3x5 + 1x3 for code; 2x7 + 8 for math.
    assert sample(fake_stack, "coe_output_tokens_total", expert="code") == 18
    assert sample(fake_stack, "coe_output_tokens_total", expert="math") == 22
    assert sample(fake_stack, "coe_prompt_tokens_total", expert="code") == 3 * 4 + 4
    # One TTFT sample per streamed request, none for whole answers.
    assert sample(fake_stack, "coe_time_to_first_token_seconds_count", expert="code") == 3
    assert sample(fake_stack, "coe_time_to_first_token_seconds_count", expert="math") == 1
    assert sample(fake_stack, "coe_inter_token_latency_seconds_count", expert="code") == 3 * 4
    # Throughput for every answer, streamed (3 chats) or not (1 completion).
    assert sample(fake_stack, "coe_output_tokens_per_second_count", expert="code") == 4
    assert sample(fake_stack, "coe_output_tokens_per_second_count", expert="math") == 3
    assert sample(fake_stack, "coe_request_duration_seconds_count", expert="math") == 3
    assert sample(fake_stack, "coe_routing_decisions_total", category="math", expert="math",
                  reason="classified") == 1
    assert sample(fake_stack, "coe_routing_decisions_total", category="code", expert="code",
                  reason="classified") == 1
    assert sample(fake_stack, "coe_routing_duration_seconds_count") == 2
    assert sample(fake_stack, "coe_routing_stages_total", stage="single") == 2  # a one-stage router decided both
    assert sample(fake_stack, "coe_router_confidence_count") == 2
    for name in ("code", "math", "general"):
        assert sample(fake_stack, "coe_inflight_requests", expert=name) == 0
        assert sample(fake_stack, "coe_expert_up", expert=name) == 1


def test_huge_unknown_model_adds_no_series(fake_stack: FakeStack) -> None:
    def series() -> set[str]:
        text = httpx.get(f"{fake_stack.url}/metrics", timeout=10).text
        return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}

    httpx.post(f"{fake_stack.url}/v1/chat/completions", timeout=10,
               json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    before = series()
    response = httpx.post(f"{fake_stack.url}/v1/chat/completions", timeout=10,
                          json={"model": "m" * 10_000, "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 404
    assert len(response.json()["error"]["message"]) < 300
    after = series()
    assert after == before
    assert not any("mmmm" in s for s in after)


def test_metrics_endpoint_speaks_prometheus_text(fake_stack: FakeStack) -> None:
    response = httpx.get(f"{fake_stack.url}/metrics", timeout=10)
    assert response.headers["content-type"].startswith("text/plain")
    assert 'coe_expert_up{expert="code"} 1.0' in response.text


def test_one_request_log_line_per_request_without_text(
    fake_stack: FakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="coe.requests")
    secret = "my-secret-prompt-words"
    headers = {"authorization": "Bearer sk-should-never-be-logged"}
    httpx.post(f"{fake_stack.url}/v1/chat/completions", timeout=10, headers=headers,
               json={"model": "auto", "stream": True, "messages": [{"role": "user", "content": f"python {secret}"}]})
    httpx.post(f"{fake_stack.url}/v1/chat/completions", timeout=10, json={"model": "nope", "messages": []})
    assert wait_until(lambda: len([r for r in caplog.records if r.name == "coe.requests"]) == 2)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "coe.requests"]
    assert [line["status"] for line in lines] == [200, 404]
    first = lines[0]
    assert first["expert"] == "code" and first["category"] == "code" and first["reason"] == "classified"
    assert first["output_tokens"] == 8 and first["ttft_s"] is not None and first["stream"] is True
    assert len(first["request_id"]) == 32
    text = caplog.text
    assert secret not in text and "sk-should-never" not in text
