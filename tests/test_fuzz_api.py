"""Property-based fuzzing of the HTTP api: never a 5xx from the gateway itself, every error OpenAI-shaped."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures_gateway import FakeStack
from tests.observe import at_baseline, sse_events, wait_until

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                    st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
roles = st.one_of(st.sampled_from(["system", "user", "assistant", "tool", "developer"]), st.text(max_size=8))
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(st.text(max_size=30), scalars)}),
    st.fixed_dictionaries({"type": st.text(max_size=10)}),
    json_values,
)
messages = st.lists(
    st.fixed_dictionaries({"role": roles}, optional={"content": st.one_of(st.text(max_size=60), st.lists(parts,
                                                                                                       max_size=3),
                                                                          scalars)}),
    max_size=4,
)
models = st.one_of(st.sampled_from(["auto", "code", "math", "general"]), st.text(max_size=40))
optional_fields: dict[str, st.SearchStrategy[Any]] = {
    "stream": st.one_of(st.booleans(), scalars),
    "stream_options": st.one_of(st.fixed_dictionaries({"include_usage": st.booleans()}), json_values),
    "temperature": st.one_of(st.floats(-1, 3, allow_nan=False), scalars),
    "top_p": st.one_of(st.floats(-0.5, 1.5, allow_nan=False), scalars),
    "max_tokens": st.one_of(st.integers(-5, 50), scalars),
    "n": st.one_of(st.integers(-1, 3), scalars),
    "stop": st.one_of(st.text(max_size=5), st.lists(st.text(max_size=5), max_size=3), scalars),
    "top_k": json_values,
}
chat_bodies = st.fixed_dictionaries({"model": models, "messages": messages}, optional=optional_fields)
completion_bodies = st.fixed_dictionaries(
    {"model": models, "prompt": st.one_of(st.text(max_size=60), st.lists(st.integers(0, 50000), max_size=5),
                                          json_values)},
    optional=optional_fields,
)
raw_bodies = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()))
requests = st.one_of(
    st.tuples(st.just("/v1/chat/completions"), chat_bodies.map(lambda b: json.dumps(b).encode())),
    st.tuples(st.just("/v1/completions"), completion_bodies.map(lambda b: json.dumps(b).encode())),
    st.tuples(st.sampled_from(["/v1/chat/completions", "/v1/completions"]), raw_bodies),
)
request_ids = st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=200)
                         .map(lambda s: s.strip() or "x"))


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert isinstance(error["message"], str) and isinstance(error["type"], str)
    elif response.headers["content-type"].startswith("text/event-stream"):
        events = sse_events(response.content)
        assert events[-1] == "[DONE]"
    else:
        assert "choices" in response.json()
    assert 0 < len(response.headers["x-request-id"]) <= 128


def test_fuzzed_requests_get_answers_or_openai_errors(fake_stack: FakeStack) -> None:
    statuses: list[int] = []
    with httpx.Client(base_url=fake_stack.url, timeout=20) as client:

        @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
        @given(request=requests, request_id=request_ids)
        def fuzz(request: tuple[str, bytes], request_id: str | None) -> None:
            path, body = request
            headers = {"content-type": "application/json"}
            if request_id is not None:
                headers["x-request-id"] = request_id
            response = client.post(path, content=body, headers=headers)
            statuses.append(response.status_code)
            check(response)

        fuzz()
    assert len(statuses) >= 1000
    assert {200, 400, 404} <= set(statuses)  # the generator reaches answers and both kinds of refusal
    assert wait_until(lambda: at_baseline(fake_stack))
