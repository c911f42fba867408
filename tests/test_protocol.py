"""The gateway parses only what it routes and relays on; everything else is the engine's to judge."""

from __future__ import annotations

import json

import pytest

from gateway.dispatch import upstream_body
from gateway.errors import APIError
from gateway.protocol import Turn, parse_chat, parse_chat_batch, parse_completion, parse_tokenize
from gateway.registry import ExpertConfig


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_missing_or_empty_model_is_routed() -> None:
    assert parse_chat(body({"messages": []})).model == "auto"
    assert parse_completion(body({"model": "", "prompt": "x"})).model == "auto"
    assert parse_chat(body({"model": "code", "messages": []})).model == "code"


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("true", True), (0, False), (None, False)])
def test_stream_is_read_as_vllm_reads_booleans(value: object, expected: bool) -> None:
    assert parse_chat(body({"messages": [], "stream": value})).stream is expected


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"model": 42, "messages": []}, "model"),
        ({"messages": [], "stream": "maybe"}, "stream"),
        ({"messages": [], "stream": True, "stream_options": "usage"}, "stream_options"),
        ({"messages": [], "stream": True, "stream_options": {"include_usage": [1]}}, "stream_options.include_usage"),
    ],
)
def test_what_the_gateway_needs_is_checked_with_a_clear_message(payload: dict[str, object], param: str) -> None:
    with pytest.raises(APIError) as caught:
        parse_chat(body(payload))
    assert (caught.value.status, caught.value.param) == (400, param)
    assert "expected" in caught.value.message  # names what is allowed, not only what is wrong
    assert "expected" in caught.value.message


@pytest.mark.parametrize(
    "payload",
    [
        {"messages": [{"role": "wizard", "content": "x"}]},
        {"messages": [{"role": "user", "content": 42}]},
        {"messages": [{"role": "user", "content": [{"type": "new_part_kind"}]}]},
        {"messages": "not a list", "temperature": 99, "logprobs": True, "top_logprobs": -1},
        {"messages": [], "n": 0, "max_tokens": -3, "stream_options": {"include_usage": True}},
    ],
)
def test_everything_else_passes_untouched(payload: dict[str, object]) -> None:
    parsed = parse_chat(body(payload))
    assert parsed.payload == payload


def test_usage_chunk_wanted_only_when_asked() -> None:
    asked = parse_chat(body({"messages": [], "stream": True, "stream_options": {"include_usage": True}}))
    assert (asked.stream, asked.include_usage) == (True, True)
    assert parse_chat(body({"messages": [], "stream": True})).include_usage is False


def test_prompts_of_every_shape() -> None:
    assert parse_completion(body({"prompt": "def f():"})).prompt_text == "def f():"
    assert parse_completion(body({"prompt": ["a", "b"]})).prompt_text == "a"
    assert parse_completion(body({"prompt": [1, 2]})).prompt_text == ""
    assert parse_completion(body({"prompt": ""})).prompt_text == ""
    assert parse_completion(body({"prompt_embeds": "base64..."})).prompt_text == ""


def test_tokenize_routes_on_prompt_or_messages() -> None:
    assert parse_tokenize(body({"model": "code", "prompt": "hi"})).model == "code"
    chat = parse_tokenize(body({"messages": [{"role": "user", "content": "hi"}]}))
    assert chat.model == "auto" and not chat.stream


@pytest.mark.parametrize(("raw", "code"), [(b"", None), (b"{nope", "invalid_json"), (b"[1]", None)])
def test_not_a_json_object(raw: bytes, code: str | None) -> None:
    with pytest.raises(APIError) as caught:
        parse_chat(raw)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert "expected a JSON object" in caught.value.message  # every 400 of ours says what is allowed


def test_responses_input_is_read_as_turns() -> None:
    assert parse_chat(json.dumps({"input": "integrate x^2"}).encode()).turns == (Turn("user", "integrate x^2"),)
    items = [{"role": "developer", "content": "be brief"},
             {"role": "user", "content": [{"type": "input_text", "text": "fix my"}, {"type": "input_image"},
                                          {"type": "input_text", "text": "regex"}]},
             {"type": "function_call_output", "call_id": "c", "output": "42"}]
    assert parse_chat(json.dumps({"input": items}).encode()).turns == (
        Turn("developer", "be brief"), Turn("user", "fix my\nregex"))


def test_usage_is_asked_for_only_on_chat_and_completion_streams() -> None:
    expert = ExpertConfig(name="code", url="http://127.0.0.1:1/v1", model="up/code")
    request = parse_chat(json.dumps({"model": "auto", "stream": True, "input": "hi"}).encode())
    assert json.loads(upstream_body(request, expert))["stream_options"] == {"include_usage": True}
    typed = json.loads(upstream_body(request, expert, stream_usage=False))
    assert typed == {"model": "up/code", "stream": True, "input": "hi"}  # the Responses/Messages body, as sent


def test_a_batch_of_conversations_is_routed_on_the_first_and_never_streamed() -> None:
    body = {"model": "auto", "stream": True, "messages": [
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "fix my python loop"}],
        [{"role": "user", "content": "what is a tort"}]]}
    parsed = parse_chat_batch(json.dumps(body).encode())
    assert parsed.turns == (Turn("system", "be brief"), Turn("user", "fix my python loop"))
    assert not parsed.stream and parsed.payload == body  # `stream` is the engine's to refuse
    assert parse_chat_batch(b'{"messages": []}').turns == () and parse_chat_batch(b"{}").model == "auto"
