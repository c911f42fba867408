"""The fault matrix: every engine failure ends as one complete answer or one OpenAI-shaped error."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.fixtures_gateway import FakeStack
from tests.observe import at_baseline, engine_transport, sample, sse_events, wait_until

CHAT = "/v1/chat/completions"


def ask(stack: FakeStack, model: str, stream: bool = False, text: str = "write a python function") -> httpx.Response:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}
    return httpx.post(f"{stack.url}{CHAT}", json=body, timeout=30)


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error  # type: ignore[no-any-return]


def test_dead_engine_fails_over_for_routed_requests(stack_factory: Callable[..., FakeStack]) -> None:
    stack = stack_factory(dead=("code",))
    response = ask(stack, "auto")
    assert response.status_code == 200
    assert response.headers["x-coe-route-reason"] == "failover"
    assert response.json()["model"] == response.headers["x-coe-expert"] != "code"
    assert sample(stack, "coe_fallbacks_total", from_expert="code", to_expert=response.headers["x-coe-expert"],
                  reason="connect") == 1
    assert sample(stack, "coe_upstream_errors_total", expert="code", kind="connect") == 1
    assert wait_until(lambda: at_baseline(stack))


def test_dead_engine_is_an_error_for_pinned_requests(stack_factory: Callable[..., FakeStack]) -> None:
    stack = stack_factory(dead=("code",))
    response = ask(stack, "code")
    assert_openai_error(response, 503)
    assert response.headers["retry-after"]
    assert sample(stack, "coe_fallbacks_total", from_expert="code", to_expert="math", reason="connect") == 0


@pytest.mark.parametrize(("fault", "pinned_status", "kind"), [
    ("status_500", 502, "http_5xx"), ("status_503", 502, "http_5xx"), ("html_502", 502, "http_5xx"),
    ("status_429", 429, "http_429"),
])
def test_errors_before_headers(fake_stack: FakeStack, fault: str, pinned_status: int, kind: str) -> None:
    fake_stack.engines["code"].behaviour.fault = fault
    pinned = ask(fake_stack, "code", stream=True)
    assert_openai_error(pinned, pinned_status)
    assert pinned.headers["retry-after"]
    routed = ask(fake_stack, "auto", stream=True)
    assert routed.status_code == 200
    assert routed.headers["x-coe-route-reason"] == "failover"
    assert sse_events(routed.content)[-1] == "[DONE]"
    assert sample(fake_stack, "coe_upstream_errors_total", expert="code", kind=kind) == 2
    assert wait_until(lambda: at_baseline(fake_stack))


@pytest.mark.parametrize("fault", ["flat_400", "string_400", "status_400"])
def test_engine_client_errors_keep_their_message(fake_stack: FakeStack, fault: str) -> None:
    fake_stack.engines["code"].behaviour.fault = fault
    error = assert_openai_error(ask(fake_stack, "auto"), 400)
    assert error["type"] == ("BadRequestError" if fault == "status_400" else "invalid_request_error")
    assert error["message"] in {"flat shaped error", "a bare string error", "max_tokens is too large"}
    # The client's mistake, not an expert fault: counted apart, the breaker left alone.
    assert sample(fake_stack, "coe_engine_rejections_total", expert="code", status="400") == 1
    assert sample(fake_stack, "coe_upstream_errors_total", expert="code", kind="rejected") == 0
    assert fake_stack.state.health.snapshot()["code"]["consecutive_failures"] == 0


def test_silent_engine_times_out_then_fails_over(stack_factory: Callable[..., FakeStack]) -> None:
    stack = stack_factory(first_byte_timeout_s=0.5)
    stack.engines["code"].behaviour.fault = "silent"
    assert_openai_error(ask(stack, "code"), 504)
    routed = ask(stack, "auto", stream=True)
    assert routed.status_code == 200 and routed.headers["x-coe-route-reason"] == "failover"
    # The timed-out attempt left nothing behind: no busy upstream connection, nothing in flight.
    assert wait_until(lambda: at_baseline(stack))
    assert sample(stack, "coe_upstream_errors_total", expert="code", kind="timeout") == 2


@pytest.mark.parametrize(("fault", "code"), [
    ("stall_mid", "upstream_stalled"), ("reset_mid", "upstream_reset"),
    ("error_event", "upstream_error"), ("malformed", "upstream_malformed"),
])
def test_mid_stream_failures_end_with_one_error_event(
    stack_factory: Callable[..., FakeStack], fault: str, code: str
) -> None:
    # Only the stall waits out the idle timeout; the others keep a long one so a loaded machine cannot turn them
    # into stalls.
    stack = stack_factory(stream_idle_timeout_s=0.5 if fault == "stall_mid" else 10.0)
    stack.engines["code"].behaviour.fault = fault
    started = time.monotonic()
    response = ask(stack, "auto", stream=True)
    assert response.status_code == 200  # the headers had gone out
    assert time.monotonic() - started < 10  # a stall is cut by the idle timeout, not the 30 s total deadline
    events = sse_events(response.content)
    assert events[-1] == "[DONE]"
    errors = [e for e in events[:-1] if "error" in e]
    assert len(errors) == 1 and errors[0]["error"]["code"] == code
    assert events[-2] is errors[0]
    assert not any(c.get("finish_reason") for e in events[:-1] if "choices" in e for c in e["choices"])
    assert stack.engines["math"].stats.requests == 0  # never retried after the first byte
    assert wait_until(lambda: at_baseline(stack))


def test_missing_done_after_a_finished_answer_is_completed(fake_stack: FakeStack) -> None:
    fake_stack.engines["code"].behaviour.fault = "no_done"
    events = sse_events(ask(fake_stack, "code", stream=True).content)
    assert events[-1] == "[DONE]"
    assert not any("error" in e for e in events[:-1])


def test_missing_usage_is_counted_from_chunks(fake_stack: FakeStack) -> None:
    fake_stack.engines["code"].behaviour.fault = "no_usage"
    events = sse_events(ask(fake_stack, "code", stream=True).content)
    assert events[-1] == "[DONE]"
    assert wait_until(lambda: sample(fake_stack, "coe_output_tokens_total", expert="code") == 8)


def test_client_leaving_mid_stream_aborts_the_engine_request(fake_stack: FakeStack) -> None:
    engine = fake_stack.engines["code"]
    engine.behaviour.tokens, engine.behaviour.gap_s = 200, 0.05
    body = {"model": "code", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", f"{fake_stack.url}{CHAT}", json=body, timeout=10) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]
    assert any("tok" in line for line in received)
    assert wait_until(lambda: engine.stats.aborted == 1)
    assert wait_until(lambda: at_baseline(fake_stack))
    assert sample(fake_stack, "coe_client_disconnects_total", expert="code") == 1
    assert wait_until(lambda: sample(fake_stack, "coe_requests_total", expert="code", endpoint="chat",
                                     status="499") == 1)
    assert 0 < sample(fake_stack, "coe_output_tokens_total", expert="code") < 200  # partial usage recorded


def test_client_leaving_before_the_first_byte(fake_stack: FakeStack) -> None:
    engine = fake_stack.engines["code"]
    engine.behaviour.first_delay_s = 30
    body = {"model": "code", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{fake_stack.url}{CHAT}", json=body, timeout=httpx.Timeout(10, read=0.5))
    assert wait_until(lambda: engine.stats.aborted == 1)
    assert wait_until(lambda: at_baseline(fake_stack))


def test_client_leaving_during_routing(fake_stack: FakeStack) -> None:
    classify = fake_stack.router.route

    def slow_route(text: str):  # type: ignore[no-untyped-def]
        import time

        time.sleep(1.0)
        return classify(text)

    fake_stack.router.route = slow_route  # type: ignore[method-assign]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{fake_stack.url}{CHAT}", timeout=httpx.Timeout(10, read=0.3),
                   json={"model": "auto", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert wait_until(lambda: at_baseline(fake_stack))


def test_slow_reader_gets_everything(fake_stack: FakeStack) -> None:
    fake_stack.engines["code"].behaviour.tokens = 400
    body = {"model": "code", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    import time

    chunks = []
    with httpx.stream("POST", f"{fake_stack.url}{CHAT}", json=body, timeout=30) as response:
        for chunk in response.iter_raw(64):
            chunks.append(chunk)
            if len(chunks) % 50 == 0:
                time.sleep(0.05)
    events = sse_events(b"".join(chunks))
    assert events[-1] == "[DONE]"
    assert sum(1 for e in events[:-1] if e["choices"] and e["choices"][0]["delta"].get("content")) == 400
    assert wait_until(lambda: at_baseline(fake_stack))


def test_streams_reuse_the_upstream_connection(fake_stack: FakeStack) -> None:
    for _ in range(5):
        assert sse_events(ask(fake_stack, "code", stream=True).content)[-1] == "[DONE]"
        assert wait_until(lambda: at_baseline(fake_stack))
    port = fake_stack.engine_servers["code"].port
    transport = engine_transport(fake_stack)
    to_code = [c for c in transport.connections() if c.origin[1] == port]
    assert len(to_code) == 1  # read to the end after [DONE], so kept alive, not re-opened
