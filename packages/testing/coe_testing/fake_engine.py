"""A fake vLLM engine: vLLM's OpenAI wire format, paced tokens, and faults on demand (tests, benchmarks)."""

from __future__ import annotations

import argparse
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from coe_testing.engine_protocol import check_request, wants_stream

# Faults a test can ask for; each mimics something engines or proxies really do.
FAULTS = (
    "none", "status_500", "status_503", "status_429", "status_400", "html_502", "flat_400", "string_400",
    "silent", "stall_mid", "reset_mid", "error_event", "malformed", "no_done", "no_usage", "slow_first", "end_mid",
)
_MID_FAULTS = ("stall_mid", "reset_mid", "error_event", "malformed", "end_mid")
_TOKEN = re.compile(r" tok\d+")


class EngineReset(Exception):
    """Raised inside a stream to make the server drop the connection mid-answer."""


@dataclass
class FakeBehaviour:
    """What the engine does; tests change it between requests."""

    tokens: int = 8
    gap_s: float = 0.0
    fault: str = "none"
    fault_after: int = 2  # content chunks sent before a mid-stream fault
    first_delay_s: float = 0.0


@dataclass
class FakeStats:
    """What the engine saw, for assertions on aborts and leaks."""

    requests: int = 0
    active: int = 0
    completed: int = 0
    aborted: int = 0
    last_body: dict[str, Any] = field(default_factory=dict)
    last_headers: dict[str, str] = field(default_factory=dict)


def _words(payload: dict[str, Any]) -> int:
    if "messages" in payload:
        text = " ".join(m.get("content") or "" for m in payload["messages"] if isinstance(m.get("content"), str))
    else:
        prompt = payload.get("prompt", "")
        text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
    return max(1, len(text.split()))


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class FakeEngine:
    """An ASGI app serving vLLM's chat, completions, models, tokenize, detokenize, version, health, metrics."""

    def __init__(self, served_model: str = "fake-model", behaviour: FakeBehaviour | None = None,
                 max_model_len: int = 2048) -> None:
        self.served_model = served_model
        self.max_model_len = max_model_len
        self.behaviour = behaviour or FakeBehaviour()
        self.stats = FakeStats()
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/completions", self._completions, methods=["POST"]),
            Route("/v1/models", self._models),
            Route("/tokenize", self._tokenize, methods=["POST"]),
            Route("/detokenize", self._detokenize, methods=["POST"]),
            Route("/version", lambda r: JSONResponse({"version": "fake-0.1"})),
            Route("/health", lambda r: PlainTextResponse("")),
            Route("/metrics", self._metrics),
        ])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    async def _models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [
            {"id": self.served_model, "object": "model", "created": 0, "owned_by": "vllm", "root": self.served_model,
             "parent": None, "max_model_len": self.max_model_len,
             "permission": [{"id": "modelperm-0", "object": "model_permission", "allow_sampling": True}]}
        ]})

    async def _tokenize(self, request: Request) -> JSONResponse:
        payload = await request.json()
        self.stats.last_body = payload
        if payload.get("model") != self.served_model:
            return JSONResponse({"error": {"message": f"The model `{payload.get('model')}` does not exist.",
                                           "type": "NotFoundError", "param": None, "code": 404}}, status_code=404)
        tokens = list(range(_words(payload)))  # one token per word
        return JSONResponse(
            {"count": len(tokens), "max_model_len": self.max_model_len, "tokens": tokens, "token_strs": None}
        )

    async def _detokenize(self, request: Request) -> JSONResponse:
        payload = await request.json()
        return JSONResponse({"prompt": " ".join(f"w{t}" for t in payload.get("tokens", []))})

    async def _metrics(self, request: Request) -> PlainTextResponse:
        s = self.stats
        return PlainTextResponse(
            f'vllm:num_requests_running{{model_name="{self.served_model}"}} {s.active}\n'
            f'fake_requests_total {s.requests}\nfake_aborted_total {s.aborted}\n'
        )

    async def _chat(self, request: Request) -> Response:
        return await self._answer(request, chat=True)

    async def _completions(self, request: Request) -> Response:
        return await self._answer(request, chat=False)

    async def _answer(self, request: Request, chat: bool) -> Response:
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        self.stats.requests += 1
        self.stats.last_body = payload
        self.stats.last_headers = dict(request.headers)
        b = self.behaviour
        early = self._early_fault(b.fault)
        if early is not None:
            return early
        if b.fault == "silent":  # says nothing until the client gives up, so the server can stop at once after
            while (await request.receive())["type"] != "http.disconnect":  # the body is read: next comes the end
                pass
            return Response(status_code=499)
        refused = check_request(payload, chat)
        if refused is not None:
            return refused
        if payload.get("model") != self.served_model:
            return JSONResponse({"error": {"message": f"The model `{payload.get('model')}` does not exist.",
                                           "type": "NotFoundError", "param": None, "code": 404}}, status_code=404)
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:16]
        if wants_stream(payload):  # checked above, so a valid flag
            return StreamingResponse(self._stream(payload, ident, chat), media_type="text/event-stream")
        if b.fault == "reset_mid":
            return StreamingResponse(self._cut_whole(self._whole(payload, ident, chat)), media_type="application/json")
        return JSONResponse(self._whole(payload, ident, chat))

    async def _cut_whole(self, answer: dict[str, Any]) -> AsyncIterator[bytes]:
        """Half of a whole answer, then the connection drops (an engine dying mid-generation)."""
        body = json.dumps(answer).encode()
        yield body[: len(body) // 2]
        raise EngineReset("connection dropped on purpose")

    def _early_fault(self, fault: str) -> Response | None:
        nested = {"error": {"message": "engine failure", "type": "InternalServerError", "param": None, "code": 500}}
        return {
            "status_500": JSONResponse(nested, status_code=500),
            "status_503": JSONResponse({"object": "error", "message": "overloaded", "type": "ServiceUnavailable",
                                        "code": 503}, status_code=503),
            "status_429": JSONResponse({"error": {"message": "too many requests"}}, status_code=429,
                                       headers={"retry-after": "3"}),
            "status_400": JSONResponse({"error": {"message": "max_tokens is too large", "type": "BadRequestError",
                                                  "param": "max_tokens", "code": 400}}, status_code=400),
            "flat_400": JSONResponse({"object": "error", "message": "flat shaped error", "type": "BadRequestError",
                                      "param": None, "code": 400}, status_code=400),
            "string_400": JSONResponse("a bare string error", status_code=400),
            "html_502": Response("<html><body><h1>502 Bad Gateway</h1></body></html>", status_code=502,
                                 media_type="text/html"),
        }.get(fault)

    def _text(self, i: int) -> str:
        return f" tok{i}"

    def _start(self, payload: dict[str, Any], chat: bool) -> int:
        """Where a continuation picks up: the tokens already in the final assistant message (chat) or prompt."""
        if chat:
            messages = payload.get("messages") or []
            if not (payload.get("continue_final_message") and messages and messages[-1].get("role") == "assistant"):
                return 0
            prefix = messages[-1].get("content") or ""
        else:
            prefix = payload.get("prompt") if isinstance(payload.get("prompt"), str) else ""
        match = re.search(r"(?: tok\d+)+$", prefix)
        return len(_TOKEN.findall(match.group(0))) if match else 0

    def _whole(self, payload: dict[str, Any], ident: str, chat: bool) -> dict[str, Any]:
        start = self._start(payload, chat)
        n = self._n_tokens(payload, start)
        text = "".join(self._text(i) for i in range(start, start + n))
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": []},
             "logprobs": None, "finish_reason": "stop", "stop_reason": None}
            if chat else {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop", "stop_reason": None}
        )
        self.stats.completed += 1
        prompt = _words(payload)
        return {"id": ident, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
                "model": self.served_model, "choices": [choice],
                "usage": {"prompt_tokens": prompt, "total_tokens": prompt + n, "completion_tokens": n}}

    def _n_tokens(self, payload: dict[str, Any], start: int = 0) -> int:
        left = max(self.behaviour.tokens - start, 0)
        limit = payload.get("max_tokens") or payload.get("max_completion_tokens")
        return min(left, limit) if isinstance(limit, int) else left

    async def _stream(self, payload: dict[str, Any], ident: str, chat: bool) -> AsyncIterator[bytes]:
        b, s = self.behaviour, self.stats
        s.active += 1
        finished = False
        try:
            async for event in self._events(payload, ident, chat, b):
                yield event
            finished = True
        finally:
            s.active -= 1
            if finished:
                s.completed += 1
            else:
                s.aborted += 1

    async def _events(self, payload: dict[str, Any], ident: str, chat: bool, b: FakeBehaviour) -> AsyncIterator[bytes]:
        start = self._start(payload, chat)
        created, n = int(time.time()), self._n_tokens(payload, start)
        base = {"id": ident, "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created, "model": self.served_model}
        if b.first_delay_s or b.fault == "slow_first":
            await anyio.sleep(b.first_delay_s or 3600)
        if chat:
            yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                             "logprobs": None, "finish_reason": None}]})
        for i in range(start, start + n):
            if i - start == b.fault_after and b.fault in _MID_FAULTS:
                async for event in self._mid_fault(b.fault):
                    yield event
                return
            if b.gap_s and i > start:
                await anyio.sleep(b.gap_s)
            delta = {"delta": {"content": self._text(i)}} if chat else {"text": self._text(i)}
            yield _sse({**base, "choices": [{"index": 0, **delta, "logprobs": None, "finish_reason": None}]})
        last = {"delta": {"content": ""}} if chat else {"text": ""}
        yield _sse({**base, "choices": [{"index": 0, **last, "logprobs": None, "finish_reason": "stop",
                                         "stop_reason": None}]})
        options = payload.get("stream_options") or {}
        if options.get("include_usage") and b.fault != "no_usage":
            prompt = _words(payload)
            yield _sse({**base, "choices": [],
                        "usage": {"prompt_tokens": prompt, "total_tokens": prompt + n, "completion_tokens": n}})
        if b.fault != "no_done":
            yield b"data: [DONE]\n\n"

    async def _mid_fault(self, fault: str) -> AsyncIterator[bytes]:
        if fault == "stall_mid":
            await anyio.sleep(3600)
        elif fault == "reset_mid":
            raise EngineReset("connection dropped on purpose")
        elif fault == "error_event":
            yield _sse({"error": {"message": "engine died mid-answer", "type": "InternalServerError", "code": 500}})
            yield b"data: [DONE]\n\n"
        elif fault == "malformed":
            yield b"data: {this is not json\n\n"


def main() -> None:
    """`python -m coe_testing.fake_engine --port P --model NAME --tokens N --gap-s S`."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--gap-s", type=float, default=0.0)
    args = parser.parse_args()
    engine = FakeEngine(args.model, FakeBehaviour(tokens=args.tokens, gap_s=args.gap_s))
    uvicorn.run(engine, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
