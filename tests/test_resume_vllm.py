"""Resume with real engines: two vLLM replicas of one expert on the CPU; the one answering is killed mid-stream."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from coe_testing.servers import ServerThread
from gateway.app import create_app
from gateway.registry import Registry
from gateway.settings import Settings
from tests.fixtures_engines import LocalEngines

pytestmark = pytest.mark.vllm

QUESTION = [{"role": "user", "content": "Write three sentences about the sea."}]
MAX_TOKENS = 96
CUT_AFTER = 8  # content chunks the client has read when the serving engine dies


@dataclass
class Replicas:
    """Two engines serving the same model under one name; the first is the one the test kills."""

    urls: list[str]
    model: str
    doomed_pgid: int


@pytest.fixture(scope="module")
def two_replicas(local_engines: LocalEngines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """The session's local engine as the survivor and one more engine, launched as it was, as the victim.

    Starting one engine rather than two keeps the suite's time down; the same plan (args, adapters) keeps
    the two replicas' greedy answers identical.
    """
    from coe_local.engines import plan_engines, required_ids
    from coe_local.models import default_cache_dir
    from coe_local.prepare import prepare_models, say_to_stderr
    from coe_local.stack import free_port
    from coe_local.supervisor import running_engines, vllm_engines

    (survivor,) = plan_engines(local_engines.registry)
    victim = replace(survivor, port=free_port())
    prepared = prepare_models(default_cache_dir(), *required_ids([victim]), say_to_stderr)
    engines = vllm_engines([victim], prepared, tmp_path_factory.mktemp("replica-logs"))
    with running_engines(engines, say_to_stderr, timeout_s=900) as supervisor:
        pgid = supervisor.engines[0].process.pid
        assert pgid is not None
        yield Replicas([victim.base_url, survivor.base_url], survivor.served_name, int(pgid))


def greedy(**extra: Any) -> dict[str, Any]:
    return {"messages": QUESTION, "max_tokens": MAX_TOKENS, "temperature": 0.0, **extra}


class _Tee(httpx.SyncByteStream):
    """The response bytes as they pass to the SDK, kept for the test."""

    def __init__(self, inner: httpx.SyncByteStream, sink: list[bytes]) -> None:
        self.inner, self.sink = inner, sink

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.sink.append(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()


class TeeTransport(httpx.HTTPTransport):
    """A transport that records what the gateway sent, so the test can find where the stream was resumed."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(response.status_code, headers=response.headers,
                              stream=_Tee(response.stream, self.raw), extensions=response.extensions)


def content_of(raw: bytes) -> list[str]:
    """The content pieces of the chat chunks in raw SSE bytes."""
    pieces = []
    for event in raw.split(b"\n\n"):
        if event.startswith(b"data: {"):
            for choice in json.loads(event[6:])["choices"]:
                if choice["delta"].get("content"):
                    pieces.append(choice["delta"]["content"])
    return pieces


def test_killing_the_serving_replica_mid_stream_still_gives_the_whole_answer(
    two_replicas: Replicas, tmp_path: Path
) -> None:
    # What one engine answers on its own, greedily (the two replicas are the same model).
    alone = httpx.post(f"{two_replicas.urls[1]}/chat/completions", timeout=300,
                       json={"model": two_replicas.model, **greedy()}).json()
    reference = alone["choices"][0]["message"]["content"]

    registry = Registry.model_validate({
        "fallback": "smol", "resume": True,
        "experts": [{"name": "smol", "urls": two_replicas.urls, "model": two_replicas.model,
                     "categories": ["general"]}],
    })
    settings = Settings(experts=tmp_path / "unused.yaml", probe_interval_s=3600.0, stream_idle_timeout_s=30.0)
    tee = TeeTransport()
    with ServerThread(create_app(settings, registry, router_loader=None)) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=300,
                               http_client=httpx.Client(transport=tee, timeout=300))
        stream = client.chat.completions.create(
            model="smol", stream=True, stream_options={"include_usage": True}, **greedy())
        pieces: list[str] = []
        chunks = []
        for chunk in stream:  # a fresh gateway sends its first request to replica 0
            chunks.append(chunk)
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
                if len(pieces) == CUT_AFTER:
                    os.killpg(two_replicas.doomed_pgid, signal.SIGKILL)
        state = gateway.server.config.app.state.coe  # type: ignore[attr-defined]
        resumes = sum(  # SIGKILL reads as a reset or as a stream ended early, depending on the socket's last bytes
            state.metrics.registry.get_sample_value("coe_resumes_total", {"expert": "smol", "reason": reason}) or 0
            for reason in ("reset", "incomplete"))

    text = "".join(pieces)
    assert resumes == 1
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1

    # Where the gateway resumed: the comment line the SDK skipped.
    raw = b"".join(tee.raw)
    before, marker, _ = raw.partition(b"\n: coe-resumed ")
    assert marker, raw[-400:]
    partial_pieces = content_of(before)
    partial = "".join(partial_pieces)
    assert len(partial_pieces) >= CUT_AFTER and reference.startswith(partial)  # the first attempt, as one engine
    # What one engine gives when asked to continue that partial answer, greedily.
    continued = httpx.post(f"{two_replicas.urls[1]}/chat/completions", timeout=300, json={
        "model": two_replicas.model, "messages": [*QUESTION, {"role": "assistant", "content": partial}],
        "continue_final_message": True, "add_generation_prompt": False, "temperature": 0.0,
        "max_tokens": MAX_TOKENS - len(partial_pieces)}).json()
    # The join: the cut plus the continuation, no token repeated or missing.
    assert text == partial + continued["choices"][0]["message"]["content"]
    assert finishes == [continued["choices"][0]["finish_reason"]]
    assert usage[0].completion_tokens == len(partial_pieces) + continued["usage"]["completion_tokens"]
    assert usage[0].prompt_tokens == (continued["usage"]["prompt_tokens"] - len(partial_pieces)
                                      + continued["usage"]["prompt_tokens"])  # both attempts' prompts
    print(f"cut after {len(partial_pieces)} chunks; whole text equal to one engine's answer: {text == reference}")
