"""The real `openai` SDK against the gateway on real uvicorn, in front of fake engines."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.fixtures_gateway import FakeStack


def client_for(stack: FakeStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key="unused", max_retries=0, timeout=20)


def test_lists_every_expert_and_auto(fake_stack: FakeStack) -> None:
    ids = [m.id for m in client_for(fake_stack).models.list()]
    assert ids == ["auto", "code", "math", "general"]


@pytest.mark.parametrize(
    ("prompt", "expert", "category"),
    [
        ("write a python function that reverses a list", "code", "code"),
        ("solve the equation x^2 = 4", "math", "math"),
        ("tell me a story about a lighthouse", "general", "general"),
    ],
)
def test_auto_routes_to_the_classified_expert(fake_stack: FakeStack, prompt: str, expert: str, category: str) -> None:
    raw = client_for(fake_stack).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": prompt}]
    )
    answer = raw.parse()
    assert answer.model == expert
    assert raw.headers["x-coe-expert"] == expert
    assert raw.headers["x-coe-category"] == category
    assert raw.headers["x-coe-route-reason"] == "classified"
    assert float(raw.headers["x-coe-confidence"]) == pytest.approx(0.9)
    assert raw.headers["x-coe-alternatives"].count("=") == 3
    assert fake_stack.engines[expert].stats.last_body["model"] == f"upstream-{expert}"
    assert answer.usage is not None and answer.usage.completion_tokens == 8


def test_low_confidence_goes_to_fallback(fake_stack: FakeStack) -> None:
    raw = client_for(fake_stack).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "unsure: write python code"}]
    )
    assert raw.headers["x-coe-expert"] == "general"
    assert raw.headers["x-coe-route-reason"] == "low_confidence"
    assert raw.headers["x-coe-category"] == "code"


def test_pinning_skips_the_router(fake_stack: FakeStack) -> None:
    raw = client_for(fake_stack).chat.completions.with_raw_response.create(
        model="math", messages=[{"role": "user", "content": "write a python function"}]
    )
    assert raw.parse().model == "math"
    assert raw.headers["x-coe-route-reason"] == "pinned"
    assert "x-coe-category" not in raw.headers
    assert fake_stack.router.calls == []


def test_stream_without_usage(fake_stack: FakeStack) -> None:
    chunks = list(client_for(fake_stack).chat.completions.create(
        model="auto", stream=True, messages=[{"role": "user", "content": "fix this python bug"}]
    ))
    assert {c.model for c in chunks} == {"code"}
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(f" tok{i}" for i in range(8))
    assert chunks[-1].choices[0].finish_reason == "stop"
    sent = fake_stack.engines["code"].stats.last_body
    assert sent["stream_options"] == {"include_usage": True}  # the gateway always asks, to count tokens


def test_stream_with_usage_has_exact_usage_last(fake_stack: FakeStack) -> None:
    chunks = list(client_for(fake_stack).chat.completions.create(
        model="general", stream=True, stream_options={"include_usage": True}, max_tokens=5,
        messages=[{"role": "user", "content": "one two three"}],
    ))
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert usage_chunks == [chunks[-1]]
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 5)
    assert chunks[-1].choices == []


def test_raw_stream_ends_with_done(fake_stack: FakeStack) -> None:
    body = {"model": "code", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", f"{fake_stack.url}/v1/chat/completions", json=body, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [e for e in response.read().split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    assert all(e.startswith(b"data: {") for e in events[:-1])


def test_completions_endpoint(fake_stack: FakeStack) -> None:
    client = client_for(fake_stack)
    answer = client.completions.create(model="auto", prompt="compute the derivative of x^3", max_tokens=4)
    assert answer.model == "math"
    assert answer.choices[0].text == " tok0 tok1 tok2 tok3"
    streamed = list(client.completions.create(model="code", prompt="def f():", stream=True))
    assert {c.model for c in streamed} == {"code"}


def test_unknown_model_is_not_found(fake_stack: FakeStack) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client_for(fake_stack).chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert set(error) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}}, "stream_options"),
        ({"messages": [{"role": "user", "content": [{"type": "nope"}]}]}, "messages[0].content[0]"),
    ],
)
def test_the_engines_400s_reach_the_client_as_openai_errors(
    fake_stack: FakeStack, kwargs: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(fake_stack).chat.completions.create(model="auto", **kwargs)  # type: ignore[call-overload]
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["type"] == "BadRequestError" and error["code"] == 400, "the engine's own names, unchanged"
    assert error["param"] == param
    assert sum(engine.stats.requests for engine in fake_stack.engines.values()) == 1, "the engine judged it"


def test_custom_roles_and_unknown_fields_reach_the_engine(fake_stack: FakeStack) -> None:
    messages = [{"role": "wizard", "content": "cast a python spell"}]
    answer = client_for(fake_stack).chat.completions.create(
        model="code", messages=messages, extra_body={"top_k": 5, "guided_choice": ["a", "b"]}  # type: ignore[arg-type]
    )
    assert answer.choices[0].message.content
    body = fake_stack.engines["code"].stats.last_body
    assert body["messages"] == messages and body["top_k"] == 5 and body["guided_choice"] == ["a", "b"]


def test_invalid_json_is_a_400_not_a_422(fake_stack: FakeStack) -> None:
    response = httpx.post(f"{fake_stack.url}/v1/chat/completions", content=b"{nope", timeout=10,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_engine_4xx_is_passed_on_with_its_message(fake_stack: FakeStack) -> None:
    fake_stack.engines["code"].behaviour.fault = "status_400"
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(fake_stack).chat.completions.create(model="code", messages=[{"role": "user", "content": "x"}])
    error = caught.value.body
    assert isinstance(error, dict)
    assert error == {"message": "max_tokens is too large", "type": "BadRequestError", "param": "max_tokens",
                     "code": 400}


def test_request_id_is_kept_and_passed_upstream(fake_stack: FakeStack) -> None:
    response = httpx.post(
        f"{fake_stack.url}/v1/chat/completions", timeout=10, headers={"x-request-id": "abc-123"},
        json={"model": "code", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.headers["x-request-id"] == "abc-123"
    assert fake_stack.engines["code"].stats.last_headers["x-request-id"] == "abc-123"
    made = httpx.post(f"{fake_stack.url}/v1/chat/completions", timeout=10,
                      headers={"x-request-id": "bad value\twith tab"},
                      json={"model": "code", "messages": [{"role": "user", "content": "x"}]})
    assert made.headers["x-request-id"] != "bad value\twith tab" and len(made.headers["x-request-id"]) == 32


def test_unknown_fields_reach_the_engine(fake_stack: FakeStack) -> None:
    client_for(fake_stack).chat.completions.create(
        model="code", messages=[{"role": "user", "content": "x"}], extra_body={"top_k": 5, "guided_json": {"a": 1}}
    )
    sent = fake_stack.engines["code"].stats.last_body
    assert sent["top_k"] == 5 and sent["guided_json"] == {"a": 1}
