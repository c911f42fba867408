"""The typed-event streams (Responses API, Messages API): relayed as sent, read for content, usage and the end."""

from __future__ import annotations

import json

from gateway.event_tap import MESSAGES, RESPONSES, EventTap


def event(kind: str, data: dict[str, object], with_name: bool = True) -> bytes:
    line = f"event: {kind}\n".encode() if with_name else b""
    return line + b"data: " + json.dumps({**data, "type": kind}, separators=(",", ":")).encode() + b"\n\n"


RESPONSE = {"id": "resp_1", "model": "up/Model-7B", "object": "response", "usage": None}
RESPONSES_STREAM = [
    event("response.created", {"response": RESPONSE, "sequence_number": 0}),
    event("response.output_item.added", {"item": {"id": "msg_1", "content": []}, "sequence_number": 1}),
    event("response.output_text.delta", {"delta": "Hel", "item_id": "msg_1", "sequence_number": 2}),
    event("response.output_text.delta", {"delta": "lo", "item_id": "msg_1", "sequence_number": 3}),
    event("response.output_text.done", {"text": "Hello", "item_id": "msg_1", "sequence_number": 4}),
    event("response.completed", {"response": {**RESPONSE, "usage": {"input_tokens": 7, "output_tokens": 2,
                                                                   "total_tokens": 9}}, "sequence_number": 5}),
]
MESSAGES_STREAM = [
    event("message_start", {"message": {"id": "m1", "model": "up/Model-7B", "content": [],
                                        "usage": {"input_tokens": 11, "output_tokens": 0}}}),
    event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "4"}}),
    event("content_block_stop", {"index": 0}),
    event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"input_tokens": 11, "output_tokens": 1}}),
    event("message_stop", {}),
]


def run(tap: EventTap, stream: list[bytes]) -> tuple[list[bytes], list[bool]]:
    outs, contents = [], []
    for raw in stream:
        out, has_content = tap.process(raw)
        assert out is not None
        outs.append(out)
        contents.append(has_content)
    return outs, contents


def test_responses_stream_is_relayed_as_sent_with_our_model_name() -> None:
    text: list[str] = []
    tap = EventTap("code", "up/Model-7B", RESPONSES, text=text)
    outs, contents = run(tap, RESPONSES_STREAM)
    assert outs[1:-1] == RESPONSES_STREAM[1:-1]  # events without `model` pass byte for byte
    assert outs[0] == RESPONSES_STREAM[0].replace(b'"model":"up/Model-7B"', b'"model":"code"')
    assert b'"model":"code"' in outs[-1] and b"up/Model-7B" not in outs[-1]
    assert contents == [False, False, True, True, False, False] and tap.content_events == 2
    assert text == ["Hel", "lo"]
    assert tap.usage is not None and (tap.usage["input_tokens"], tap.usage["output_tokens"]) == (7, 2)
    assert tap.finished and tap.done and tap.end_marker == b""  # no `data: [DONE]` is added to these streams


def test_messages_stream_counts_usage_across_its_events() -> None:
    tap = EventTap("math", "up/Model-7B", MESSAGES, text=[])
    outs, contents = run(tap, MESSAGES_STREAM[:-1])
    assert not tap.finished, "the stream has not ended before message_stop"
    assert b'"model":"math"' in outs[0] and contents == [False, False, True, False, False]
    run(tap, MESSAGES_STREAM[-1:])
    assert tap.finished and tap.done and tap.text == ["4"]
    assert tap.usage == {"input_tokens": 11, "output_tokens": 1}


def test_events_without_an_event_line_are_typed_by_their_data() -> None:
    tap = EventTap("code", "m", RESPONSES)
    delta = event("response.output_text.delta", {"delta": "x"}, with_name=False)
    assert tap.process(delta) == (delta, True)
    tap.process(event("response.completed", {"response": {"usage": {"output_tokens": 1}}}, with_name=False))
    assert tap.finished and tap.usage == {"output_tokens": 1}


def test_engine_error_events_end_the_stream_and_pass_unchanged() -> None:
    tap = EventTap("math", "m", MESSAGES)
    error = event("error", {"error": {"type": "overloaded_error", "message": "busy"}})
    assert tap.process(error) == (error, False)
    assert tap.finished and tap.error is None  # the client reads the engine's own words


def test_gateway_errors_take_each_api_s_own_shape() -> None:
    messages = EventTap("e", "m", MESSAGES).error_event("The expert stopped sending.", "upstream_stalled")
    responses = EventTap("e", "m", RESPONSES).error_event("The expert stopped sending.", "upstream_stalled")
    assert messages.startswith(b"event: error\ndata: ") and responses.startswith(b"event: error\ndata: ")
    assert json.loads(messages.split(b"data: ", 1)[1]) == {
        "type": "error", "error": {"type": "api_error", "message": "The expert stopped sending."}}
    body = json.loads(responses.split(b"data: ", 1)[1])
    assert (body["type"], body["code"], body["message"]) == ("error", "upstream_stalled", "The expert stopped sending.")
