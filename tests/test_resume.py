"""Resume after the first byte: a stream that breaks mid-answer is finished on another replica as one stream."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import openai
import pytest

from tests.fixtures_replicas import ReplicaStacks
from tests.observe import sample, sse_events, wait_until

CODE = "write a python function"
WHOLE = "".join(f" tok{i}" for i in range(8))
BREAKS = {"reset_mid": "reset", "stall_mid": "stalled", "error_event": "error_event", "end_mid": "incomplete"}


def chat_text(events: list[Any]) -> str:
    chunks = [e for e in events if isinstance(e, dict) and e.get("choices")]
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in chunks)


def broken_stack(replica_stacks: ReplicaStacks, fault: str, resume: Any = True, **overrides: Any) -> Any:
    """`code` on two replicas; the first one (picked first) breaks after 3 tokens."""
    idle = 0.5 if fault == "stall_mid" else 10.0  # only a stall should wait out the idle timeout
    stack = replica_stacks(replicas=2, registry={"resume": resume}, stream_idle_timeout_s=idle, **overrides)
    stack.engines["code0"].behaviour.fault, stack.engines["code0"].behaviour.fault_after = fault, 3
    return stack


def sdk_stream(url: str, chat: bool, **extra: Any) -> tuple[str, list[Any]]:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=30)
    if chat:
        chunks = list(client.chat.completions.create(
            model="code", messages=[{"role": "user", "content": CODE}], stream=True,
            stream_options={"include_usage": True}, **extra))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        chunks = list(client.completions.create(
            model="code", prompt=CODE, stream=True, stream_options={"include_usage": True}, **extra))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
    return text, chunks


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completions"])
@pytest.mark.parametrize("fault", list(BREAKS))
def test_a_broken_stream_is_finished_on_the_other_replica(
    replica_stacks: ReplicaStacks, fault: str, chat: bool
) -> None:
    stack = broken_stack(replica_stacks, fault)
    text, chunks = sdk_stream(stack.url, chat, max_tokens=100)
    assert text == WHOLE  # nothing lost, nothing repeated
    assert len({c.id for c in chunks}) == 1
    usages = [c.usage for c in chunks if c.usage is not None]
    assert len(usages) == 1 and usages[0].completion_tokens == 8
    prompt = 4  # the fake counts one token per word of the prompt
    assert usages[0].prompt_tokens == prompt + (prompt + 3)  # each attempt's prompt is counted
    assert usages[0].total_tokens == usages[0].prompt_tokens + 8
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    continued = stack.engines["code1"].stats.last_body
    if chat:
        assert continued["messages"][-1] == {"role": "assistant", "content": " tok0 tok1 tok2"}
        assert continued["continue_final_message"] is True and continued["add_generation_prompt"] is False
    else:
        assert continued["prompt"] == CODE + " tok0 tok1 tok2"
    assert continued["max_tokens"] == 97
    assert sample(stack, "coe_resumes_total", expert="code", reason=BREAKS[fault]) == 1
    assert wait_until(lambda: sample(stack, "coe_inflight_requests", expert="code") == 0)


def test_the_resume_is_marked_by_a_comment_the_sdk_ignores(
    replica_stacks: ReplicaStacks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="coe.requests")
    stack = broken_stack(replica_stacks, "reset_mid")
    body = {"model": "code", "stream": True, "messages": [{"role": "user", "content": CODE}]}
    raw = httpx.post(f"{stack.url}/v1/chat/completions", json=body, timeout=30).content
    assert b"\n: coe-resumed attempt=2 reason=reset expert=code replica=1\n\n" in b"\n" + raw
    events = sse_events(raw)
    assert events[-1] == "[DONE]" and not any("error" in e for e in events if isinstance(e, dict))
    assert sum(1 for e in events if isinstance(e, dict) and e["choices"] and "role" in e["choices"][0]["delta"]) == 1
    assert not any(isinstance(e, dict) and e.get("usage") for e in events)  # not asked for: still dropped
    assert wait_until(lambda: any("coe.requests" == r.name for r in caplog.records))
    line = json.loads(next(r.getMessage() for r in caplog.records if r.name == "coe.requests"))
    assert line["resumes"] == ["reset"] and line["replica"] == "1" and line["status"] == 200
    assert line["output_tokens"] == 8


def test_a_broken_whole_answer_is_asked_again(replica_stacks: ReplicaStacks) -> None:
    stack = broken_stack(replica_stacks, "reset_mid")
    for chat in (True, False):
        client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0, timeout=30)
        if chat:
            answer: Any = client.chat.completions.create(model="code", messages=[{"role": "user", "content": CODE}])
            assert answer.choices[0].message.content == WHOLE
        else:
            answer = client.completions.create(model="code", prompt=CODE)
            assert answer.choices[0].text == WHOLE
        stack.engines["code1"].stats.requests, stack.state.health.pool("code")._next = 0, 0  # code0 first again
    assert sample(stack, "coe_resumes_total", expert="code", reason="reset") == 2


def test_resume_is_off_unless_the_registry_enables_it(replica_stacks: ReplicaStacks) -> None:
    stack = broken_stack(replica_stacks, "reset_mid", resume=False)
    body = {"model": "code", "stream": True, "messages": [{"role": "user", "content": CODE}]}
    events = sse_events(httpx.post(f"{stack.url}/v1/chat/completions", json=body, timeout=30).content)
    assert events[-2]["error"]["code"] == "upstream_reset"
    assert stack.engines["code1"].stats.requests == 0


@pytest.mark.parametrize("extra", [{"n": 2}, {"logprobs": True}, {"tools": [{"type": "function", "function": {
    "name": "f", "parameters": {"type": "object"}}}]}], ids=["n", "logprobs", "tools"])
def test_never_resumed_when_a_continuation_could_not_match(replica_stacks: ReplicaStacks, extra: Any) -> None:
    stack = broken_stack(replica_stacks, "reset_mid")
    body = {"model": "code", "stream": True, "messages": [{"role": "user", "content": CODE}], **extra}
    events = sse_events(httpx.post(f"{stack.url}/v1/chat/completions", json=body, timeout=30).content)
    assert events[-2]["error"]["code"] == "upstream_reset"
    assert sample(stack, "coe_resumes_total", expert="code", reason="reset") == 0


def test_resumes_are_bounded_and_end_in_one_error(replica_stacks: ReplicaStacks) -> None:
    stack = broken_stack(replica_stacks, "reset_mid")
    stack.engines["code1"].behaviour.fault, stack.engines["code1"].behaviour.fault_after = "reset_mid", 2
    body = {"model": "code", "stream": True, "messages": [{"role": "user", "content": CODE}]}
    events = sse_events(httpx.post(f"{stack.url}/v1/chat/completions", json=body, timeout=30).content)
    text = chat_text(events)
    assert text == " tok0 tok1 tok2 tok3 tok4"  # what both attempts sent, once each
    assert [e["error"]["code"] for e in events if isinstance(e, dict) and "error" in e] == ["upstream_reset"]
    assert sample(stack, "coe_resumes_total", expert="code", reason="reset") == 1
    assert stack.engines["general"].stats.requests == 0  # pinned: never another expert


def test_routed_streams_may_continue_on_the_next_expert(replica_stacks: ReplicaStacks) -> None:
    stack = replica_stacks(replicas=1, registry={"resume": {"enabled": True, "across_experts": True}})
    stack.engines["code0"].behaviour.fault, stack.engines["code0"].behaviour.fault_after = "reset_mid", 3
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": CODE}]}
    response = httpx.post(f"{stack.url}/v1/chat/completions", json=body, timeout=30)
    events = sse_events(response.content)
    text = chat_text(events)
    assert text == WHOLE and events[-1] == "[DONE]"
    assert stack.engines["general"].stats.last_body["continue_final_message"] is True
    log = json.dumps(stack.state.health.snapshot()["code"])
    assert "reset" in log
