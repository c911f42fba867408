"""Resume with real engines: two vLLM replicas of one expert on the CPU; the one answering is killed mid-stream."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from coe_testing.servers import ServerThread
from gateway.app import create_app
from gateway.registry import Registry
from gateway.settings import Settings
from tests.observe import wait_until

pytestmark = pytest.mark.vllm

MODEL = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "Write three sentences about the sea."}]
MAX_TOKENS = 96
CUT_AFTER = 8  # content chunks the client has read when the serving engine dies


@dataclass
class Replicas:
    """Two engines serving the same model as `smol`, and their process group ids."""

    urls: list[str]
    pgids: list[int]


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    from coe_local.engines import EnginePlan
    from coe_local.models import default_cache_dir
    from coe_local.prepare import prepare_models, say_to_stderr
    from coe_local.stack import free_port
    from coe_local.supervisor import running_engines, vllm_engines

    args = ["--max-model-len", "2048", "--dtype", "bfloat16"]
    plans = [EnginePlan(port=free_port(), model=MODEL, served_name="smol", args=args) for _ in range(2)]
    prepared = prepare_models(default_cache_dir(), [MODEL], [], say_to_stderr)
    engines = vllm_engines(plans, prepared, tmp_path_factory.mktemp("replica-logs"))
    with running_engines(engines, say_to_stderr, timeout_s=900) as supervisor:
        pgids = [engine.process.pid for engine in supervisor.engines]
        assert all(pgid is not None for pgid in pgids)
        yield Replicas([plan.base_url for plan in plans], [int(p) for p in pgids if p is not None])


def greedy(**extra: Any) -> dict[str, Any]:
    return {"messages": QUESTION, "max_tokens": MAX_TOKENS, "temperature": 0.0, **extra}


def test_killing_the_serving_replica_mid_stream_still_gives_the_whole_answer(
    two_replicas: Replicas, tmp_path: Path
) -> None:
    # What one engine answers on its own, greedily (the two replicas are the same model).
    alone = httpx.post(f"{two_replicas.urls[1]}/chat/completions", timeout=300,
                       json={"model": "smol", **greedy()}).json()
    reference = alone["choices"][0]["message"]["content"]

    registry = Registry.model_validate({
        "fallback": "smol", "resume": True,
        "experts": [{"name": "smol", "urls": two_replicas.urls, "model": "smol", "categories": ["general"]}],
    })
    settings = Settings(experts=tmp_path / "unused.yaml", probe_interval_s=3600.0, stream_idle_timeout_s=30.0)
    with ServerThread(create_app(settings, registry, router_loader=None)) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=300)
        stream = client.chat.completions.create(
            model="smol", stream=True, stream_options={"include_usage": True}, **greedy())
        pieces: list[str] = []
        chunks = []
        for chunk in stream:  # a fresh gateway sends its first request to replica 0
            chunks.append(chunk)
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
                if len(pieces) == CUT_AFTER:
                    os.killpg(two_replicas.pgids[0], signal.SIGKILL)
        state = gateway.server.config.app.state.coe  # type: ignore[attr-defined]
        resumes = sum(  # SIGKILL reads as a reset or as a stream ended early, depending on the socket's last bytes
            state.metrics.registry.get_sample_value("coe_resumes_total", {"expert": "smol", "reason": reason}) or 0
            for reason in ("reset", "incomplete"))

    text = "".join(pieces)
    assert resumes == 1
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [alone["choices"][0]["finish_reason"]]
    # The cut and the continuation join without a repeated or missing token: the same text as one engine's.
    assert text == reference, (text, reference)
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1
    assert abs(usage[0].completion_tokens - alone["usage"]["completion_tokens"]) <= 2
    assert usage[0].prompt_tokens > 2 * alone["usage"]["prompt_tokens"]  # both attempts' prompts are counted
    assert wait_until(lambda: not _alive(two_replicas.pgids[0]), timeout_s=30)


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
