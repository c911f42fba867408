"""The same requests straight to a real vLLM engine and through the gateway pinned to it: the same answers.

Status, error message and every response field are compared, except what differs by nature (ids, creation
times, the `model` field, which names the expert). Greedy decoding makes the text comparable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from coe_testing.servers import ServerThread
from gateway.app import create_app
from gateway.settings import Settings
from tests.fixtures_engines import LocalEngines
from tests.observe import sse_events
from tests.test_cors import PREFLIGHT

pytestmark = pytest.mark.vllm

EXPERT = "general"  # the base model, served under the expert's own name: same `model` both ways
VOLATILE = {"id", "created", "model", "system_fingerprint", "service_tier", "kv_transfer_params"}
USER = [{"role": "user", "content": "Name three colours."}]

CHAT_CASES: dict[str, dict[str, Any]] = {
    "plain": {"messages": USER, "max_tokens": 12},
    "custom_role": {"messages": [{"role": "narrator", "content": "Once upon a time"}, *USER], "max_tokens": 8},
    "logprobs": {"messages": USER, "max_tokens": 6, "logprobs": True, "top_logprobs": 3},
    "n_2": {"messages": USER, "max_tokens": 6, "n": 2},
    "stop": {"messages": USER, "max_tokens": 20, "stop": [","]},
    "json_schema": {"messages": [{"role": "user", "content": "Give a colour as JSON."}], "max_tokens": 20,
                    "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": {
                        "type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}}}},
    "top_logprobs_too_many": {"messages": USER, "max_tokens": 4, "logprobs": True, "top_logprobs": 50},
    "content_is_a_number": {"messages": [{"role": "user", "content": 42}], "max_tokens": 4},
    "max_tokens_over_context": {"messages": USER, "max_tokens": 10**6},
    "temperature_out_of_range": {"messages": USER, "max_tokens": 4, "temperature": -1},
}
COMPLETION_CASES: dict[str, dict[str, Any]] = {
    "plain": {"prompt": "The capital of France is", "max_tokens": 8},
    "logprobs_10": {"prompt": "The capital of France is", "max_tokens": 4, "logprobs": 10},
    "echo": {"prompt": "One, two,", "max_tokens": 4, "echo": True},
    "token_prompt": {"prompt": [504, 3575, 282], "max_tokens": 4},
    "empty_prompt": {"prompt": "", "max_tokens": 4},
    "prompt_embeds_only": {"prompt_embeds": "bm90IGEgdGVuc29y", "max_tokens": 4},
}

# vLLM's own batch of conversations, answered together (one choice per conversation).
BATCH_CASES: dict[str, dict[str, Any]] = {
    "two_conversations": {"messages": [USER, [{"role": "user", "content": "Name a fruit."}]], "max_tokens": 6},
    "streamed": {"messages": [USER], "max_tokens": 4, "stream": True},
    "not_a_list_of_conversations": {"messages": USER, "max_tokens": 4},
}

# The engine's other conversation APIs (OpenAI's Responses API, Anthropic's Messages API), as vLLM serves them.
RESPONSES_CASES: dict[str, dict[str, Any]] = {
    "text_input": {"input": "Name three colours.", "max_output_tokens": 12},
    "message_items": {"input": [{"role": "user", "content": [{"type": "input_text", "text": "Name three colours."}]}],
                      "instructions": "Be brief.", "max_output_tokens": 8},
    "negative_max_tokens": {"input": "hi", "max_output_tokens": -1},
}
MESSAGES_CASES: dict[str, dict[str, Any]] = {
    "plain": {"messages": USER, "max_tokens": 12},
    "system_and_blocks": {"system": "Be brief.", "max_tokens": 8,
                          "messages": [{"role": "user", "content": [{"type": "text", "text": "Name three colours."}]}]},
    "without_max_tokens": {"messages": USER},
}
VOLATILE_ITEMS = {"id", "created_at", "item_id"}  # the Responses API's ids and times sit in nested items too


@pytest.fixture(scope="module")
def paths(local_engines: LocalEngines) -> Iterator[tuple[str, str]]:
    """The engine's root URL and the gateway's, both serving `EXPERT`."""
    settings = Settings(experts=local_engines.registry_path, probe_interval_s=5.0)
    with ServerThread(create_app(settings, local_engines.registry, router_loader=None)) as gateway:
        yield local_engines.base_urls[EXPERT].removesuffix("/v1"), gateway.url


def comparable(value: Any) -> Any:
    """The answer without its volatile fields; floats rounded (two runs of a CPU engine differ in the last bits)."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in VOLATILE | VOLATILE_ITEMS}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, float):
        return round(value, 2)
    return value


def both(paths: tuple[str, str], path: str, body: dict[str, Any]) -> tuple[httpx.Response, httpx.Response]:
    engine, gateway = paths
    payload = {"model": EXPERT, "temperature": 0.0, **body}
    with httpx.Client(timeout=300) as client:
        return client.post(engine + path, json=payload), client.post(gateway + path, json=payload)


def assert_same(direct: httpx.Response, through: httpx.Response) -> None:
    assert through.status_code == direct.status_code, (direct.text[:300], through.text[:300])
    if direct.status_code >= 400:
        assert through.json() == direct.json(), "the engine's error, every field of it"
    else:
        assert comparable(through.json()) == comparable(direct.json())
        assert through.json()["model"] == EXPERT


@pytest.mark.parametrize("case", sorted(CHAT_CASES))
def test_chat(paths: tuple[str, str], case: str) -> None:
    assert_same(*both(paths, "/v1/chat/completions", CHAT_CASES[case]))


@pytest.mark.parametrize("case", sorted(COMPLETION_CASES))
def test_completions(paths: tuple[str, str], case: str) -> None:
    assert_same(*both(paths, "/v1/completions", COMPLETION_CASES[case]))


@pytest.mark.parametrize("case", sorted(BATCH_CASES))
def test_chat_batch(paths: tuple[str, str], case: str) -> None:
    direct, through = both(paths, "/v1/chat/completions/batch", BATCH_CASES[case])
    assert_same(direct, through)
    if case == "two_conversations":
        assert len(through.json()["choices"]) == 2


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_json_body_sent_as_another_type_is_judged_by_the_engine(
    paths: tuple[str, str], content_type: str | None
) -> None:
    engine, gateway = paths
    body = json.dumps({"model": EXPERT, "messages": USER, "max_tokens": 4}).encode()
    headers = {} if content_type is None else {"content-type": content_type}
    with httpx.Client(timeout=300) as client:
        direct = client.post(f"{engine}/v1/chat/completions", content=body, headers=headers)
        through = client.post(f"{gateway}/v1/chat/completions", content=body, headers=headers)
    assert direct.status_code == 400
    assert_same(direct, through)


def streamed_text(response: httpx.Response) -> tuple[str, list[Any], Any]:
    events = [e for e in sse_events(response.content) if e != "[DONE]"]
    text = "".join((c.get("delta", {}).get("content") or c.get("text") or "") for e in events for c in e["choices"])
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c.get("finish_reason")]
    usage = next((e["usage"] for e in events if e.get("usage")), None)
    return text, finishes, usage


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"messages": USER, "max_tokens": 12, "stream": True,
                              "stream_options": {"include_usage": True}}),
    ("/v1/completions", {"prompt": "The capital of France is", "max_tokens": 8, "stream": True}),
])
def test_streams(paths: tuple[str, str], path: str, body: dict[str, Any]) -> None:
    direct, through = both(paths, path, body)
    assert direct.status_code == through.status_code == 200
    assert streamed_text(through) == streamed_text(direct)
    assert sse_events(through.content)[-1] == "[DONE]"


def test_engine_endpoints(paths: tuple[str, str]) -> None:
    engine, gateway = paths
    with httpx.Client(timeout=60) as client:
        assert client.get(f"{gateway}/version").json()["version"] == client.get(f"{engine}/version").json()["version"]
        body = {"model": EXPERT, "prompt": "Hello world"}
        tokens = client.post(f"{engine}/tokenize", json=body).json()
        assert client.post(f"{gateway}/tokenize", json=body).json() == tokens
        back = {"model": EXPERT, "tokens": tokens["tokens"]}
        assert client.post(f"{gateway}/detokenize", json=back).json() == client.post(f"{engine}/detokenize",
                                                                                       json=back).json()


def test_model_card_keeps_what_the_engine_says(paths: tuple[str, str]) -> None:
    engine, gateway = paths
    with httpx.Client(timeout=60) as client:
        direct = next(c for c in client.get(f"{engine}/v1/models").json()["data"] if c["id"] == EXPERT)
        for _ in range(50):  # the gateway learns the card from its first health probe, sent as it starts
            through = client.get(f"{gateway}/v1/models/{EXPERT}").json()
            if "max_model_len" in through:
                break
            time.sleep(0.1)
    engine_fields = {k: v for k, v in direct.items() if k not in {"object", "owned_by"}}
    assert comparable({k: through.get(k) for k in engine_fields}) == comparable(engine_fields)
    assert {"root", "max_model_len"} <= set(engine_fields)  # what vLLM clients read (LoRA adapters: `parent`)


def test_browsers_get_the_engines_cors_answers(paths: tuple[str, str]) -> None:
    body = {"model": EXPERT, "prompt": "Hi", "max_tokens": 2}

    def cors(response: httpx.Response) -> tuple[int, dict[str, str]]:
        return response.status_code, {k: v for k, v in response.headers.items() if k.startswith("access-control-")}

    with httpx.Client(timeout=60) as client:
        answers = [client.options(f"{root}/v1/completions", headers=PREFLIGHT) for root in paths]
        assert cors(answers[1]) == cors(answers[0])  # no origin allowed by default: 400, as vLLM answers
        assert answers[1].text == answers[0].text
        posts = [cors(client.post(f"{root}/v1/completions", json=body, headers={"origin": "https://chat.example"}))
                 for root in paths]
        assert posts[1] == posts[0]


@pytest.mark.parametrize("case", sorted(RESPONSES_CASES))
def test_responses(paths: tuple[str, str], case: str) -> None:
    assert_same(*both(paths, "/v1/responses", RESPONSES_CASES[case]))


@pytest.mark.parametrize("case", sorted(MESSAGES_CASES))
def test_messages(paths: tuple[str, str], case: str) -> None:
    assert_same(*both(paths, "/v1/messages", MESSAGES_CASES[case]))


def typed_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event name, data) of a typed-event stream, volatile fields removed."""
    events = []
    for block in response.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            events.append((lines.get("event", ""), comparable(json.loads(lines["data"]))))
    return events


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/responses", {"input": "Name three colours.", "max_output_tokens": 10, "stream": True}),
    ("/v1/messages", {"messages": USER, "max_tokens": 10, "stream": True}),
])
def test_typed_event_streams(paths: tuple[str, str], path: str, body: dict[str, Any]) -> None:
    direct, through = both(paths, path, body)
    assert direct.status_code == through.status_code == 200
    assert typed_events(through) == typed_events(direct)  # every event, in order: nothing added, nothing lost
    assert "[DONE]" not in through.text


def test_messages_count_tokens_and_ping(paths: tuple[str, str]) -> None:
    engine, gateway = paths
    body = {"model": EXPERT, "messages": USER}
    with httpx.Client(timeout=60) as client:
        count = client.post(f"{engine}/v1/messages/count_tokens", json=body)
        assert client.post(f"{gateway}/v1/messages/count_tokens", json=body).json() == count.json()
        assert client.get(f"{gateway}/ping").status_code == client.get(f"{engine}/ping").status_code == 200
