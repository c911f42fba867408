"""Event splitting and the stream tap: bytes forwarded untouched but for `model`."""

from __future__ import annotations

import json

import pytest

from gateway.sse import EventSplitter, MalformedEvent, ModelRewriter, StreamTap

CHUNK = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up/Model-7B",'
         b'"choices":[{"index":0,"delta":{"content":"hi \\"model\\":\\"up/Model-7B\\""},"finish_reason":null}]}\n\n')


def test_splitter_handles_any_read_size() -> None:
    stream = CHUNK * 3 + b"data: [DONE]\n\n"
    for size in (1, 7, 64, len(stream)):
        splitter = EventSplitter()
        events = [e for i in range(0, len(stream), size) for e in splitter.feed(stream[i:i + size])]
        assert events == [CHUNK, CHUNK, CHUNK, b"data: [DONE]\n\n"]
        assert splitter.pending == b""


def test_splitter_accepts_crlf() -> None:
    assert EventSplitter().feed(b"data: [DONE]\r\n\r\n") == [b"data: [DONE]\n\n"]


def test_tap_rewrites_only_the_model_field() -> None:
    tap = StreamTap("code", "up/Model-7B", keep_usage=False)
    out, has_content = tap.process(CHUNK)
    assert has_content and tap.content_events == 1
    assert out == CHUNK.replace(b'"model":"up/Model-7B"', b'"model":"code"', 1)
    assert b'\\"model\\":\\"up/Model-7B\\"' in out  # the same words inside the answer are left alone


def test_tap_drops_unrequested_usage_and_keeps_requested() -> None:
    usage = b'data: {"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}\n\n'
    dropped = StreamTap("e", "m", keep_usage=False)
    assert dropped.process(usage) == (None, False)
    assert dropped.usage == {"prompt_tokens": 3, "completion_tokens": 5}
    kept_out, _ = StreamTap("e", "m", keep_usage=True).process(usage)
    assert kept_out is not None and json.loads(kept_out[6:])["model"] == "e"


def test_tap_strips_usage_from_content_chunks_when_not_asked() -> None:
    event = b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"completion_tokens":1}}\n\n'
    out, _ = StreamTap("e", "m", keep_usage=False).process(event)
    assert out is not None and "usage" not in json.loads(out[6:])


def test_tap_sees_finish_done_and_errors() -> None:
    tap = StreamTap("e", "m", keep_usage=False)
    tap.process(b'data: {"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    assert tap.finished
    assert tap.process(b": keep-alive\n\n") == (b": keep-alive\n\n", False)
    assert tap.process(b'data: {"error":{"message":"boom"}}\n\n') == (None, False)
    assert tap.error == {"message": "boom"}
    assert tap.process(b"data: [DONE]\n\n") == (b"data: [DONE]\n\n", False) and tap.done


@pytest.mark.parametrize("event", [b"data: {nope\n\n", b"data: [1,2]\n\n"])
def test_tap_rejects_malformed_events(event: bytes) -> None:
    with pytest.raises(MalformedEvent):
        StreamTap("e", "m", keep_usage=False).process(event)


def test_rewriter_falls_back_to_serialising_unusual_spacing() -> None:
    raw = b'{"model" : "m", "x": 1}'
    out = ModelRewriter("m", "e").rewrite(raw, json.loads(raw), sse=False)
    assert json.loads(out) == {"model": "e", "x": 1}


def _chunk(choice: str, model: str = "m") -> bytes:
    return b'data: {"id":"c1","model":"' + model.encode() + b'","choices":[' + choice.encode() + b"]}\n\n"


@pytest.mark.parametrize(("choice", "content"), [
    ('{"index":0,"delta":{"content":"x"},"logprobs":null,"finish_reason":null}', True),
    ('{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}', False),
    ('{"index":0,"delta":{"reasoning_content":"hmm"},"finish_reason":null}', True),
    ('{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t"}]},"finish_reason":null}', True),
    ('{"index":0,"text":"y","logprobs":{"tokens":["y"],"text_offset":[0]},"finish_reason":null}', True),
    ('{"index":0,"text":"","finish_reason":null}', False),
    ('{"index":0,"delta":{"content":null},"logprobs":{"content":[{"token":"a"}]},"finish_reason":null}', False),
])
def test_plain_chunks_are_relayed_without_reading_their_json(
    monkeypatch: pytest.MonkeyPatch, choice: str, content: bool
) -> None:
    monkeypatch.setattr("gateway.sse.json.loads", _never)  # a plain content chunk must not be parsed
    tap = StreamTap("e", "m", keep_usage=False)
    out, has_content = tap.process(_chunk(choice))
    assert out == _chunk(choice, "e") and has_content is content and tap.content_events == int(content)
    assert not tap.finished and tap.usage is None and tap.error is None


@pytest.mark.parametrize("event", [
    _chunk('{"index":0,"delta":{},"finish_reason":"length"}'),
    b'data: {"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n',
    b'data: {"error":{"message":"boom"}}\n\n',
    _chunk('{"index":0,"delta":{"content":"x"},"finish_reason":null}', "other-model"),
    b'data: {"model": "m", "choices": [{"delta": {"content": "x"}, "finish_reason": null}]}\n\n',
])
def test_events_that_matter_are_still_read(monkeypatch: pytest.MonkeyPatch, event: bytes) -> None:
    seen: list[bytes] = []
    loads = json.loads
    monkeypatch.setattr("gateway.sse.json.loads", lambda data: seen.append(data) or loads(data))
    StreamTap("e", "m", keep_usage=False).process(event)
    assert seen, "a finish, usage, error or unusual event must be parsed"


def _never(data: bytes) -> object:
    raise AssertionError(f"parsed {data!r}")
