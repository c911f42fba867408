"""The whole path with real parts: gateway -> real vLLM on the CPU, the real router, a real Prometheus."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from coe_testing.servers import ServerThread
from gateway.app import create_app
from gateway.settings import Settings
from tests.dashboards import promql_expressions
from tests.fixtures_engines import LocalEngines
from tests.observe import wait_until
from tests.test_shutdown import free_port

pytestmark = pytest.mark.vllm

CODE_PROMPT = "Write a Python function that returns the reverse of a string."


@pytest.fixture(scope="module")
def real_gateway(local_engines: LocalEngines) -> Iterator[ServerThread]:
    """The gateway with the shipped router artifact in front of the local profile's engines."""
    settings = Settings(experts=local_engines.registry_path, probe_interval_s=5.0)
    with ServerThread(create_app(settings, local_engines.registry)) as server:
        yield server


def engine_url(local_engines: LocalEngines) -> str:
    return next(iter(local_engines.base_urls.values())).removesuffix("/v1")


def vllm_metric(base: str, name: str, **labels: str) -> float:
    """Sum of a vLLM series' samples matching the labels."""
    total = 0.0
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def gateway_metric(server: ServerThread, name: str, **labels: str) -> float:
    value = server.server.config.app.state.coe.metrics.registry.get_sample_value(name, labels)  # type: ignore[attr-defined]
    return float(value or 0.0)


def test_routed_stream_returns_real_tokens_and_exact_usage(
    real_gateway: ServerThread, local_engines: LocalEngines
) -> None:
    client = openai.OpenAI(base_url=f"{real_gateway.url}/v1", api_key="x", max_retries=0, timeout=300)
    params = {"messages": [{"role": "user", "content": CODE_PROMPT}], "max_tokens": 24, "temperature": 0.0}
    with client.chat.completions.with_streaming_response.create(
        model="auto", stream=True, stream_options={"include_usage": True}, **params  # type: ignore[arg-type]
    ) as response:
        expert = response.headers["x-coe-expert"]
        assert response.headers["x-coe-route-reason"] == "classified"
        assert response.headers["x-coe-category"] == "code" and expert == "code"
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and {c.model for c in chunks} == {"code"} and len({c.id for c in chunks}) == 1
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    direct = openai.OpenAI(base_url=local_engines.base_urls["code"], api_key="x", max_retries=0, timeout=300)
    reference = direct.chat.completions.create(model="code", **params)  # type: ignore[call-overload]
    assert reference.choices[0].message.content == text  # greedy: the same tokens through the gateway
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        reference.usage.prompt_tokens, reference.usage.completion_tokens)


def test_the_responses_and_messages_apis_route_and_answer_as_the_engine_does(
    real_gateway: ServerThread, local_engines: LocalEngines
) -> None:
    # Each API's own SDK, pointed at the gateway with nothing changed but the base URL.
    client = openai.OpenAI(base_url=f"{real_gateway.url}/v1", api_key="x", max_retries=0, timeout=300)
    params = {"input": CODE_PROMPT, "max_output_tokens": 12, "temperature": 0.0}
    raw = client.responses.with_raw_response.create(model="auto", **params)  # type: ignore[call-overload]
    assert (raw.headers["x-coe-expert"], raw.headers["x-coe-category"]) == ("code", "code")
    answer = raw.parse()
    direct = openai.OpenAI(base_url=local_engines.base_urls["code"], api_key="x", max_retries=0, timeout=300)
    assert answer.model == "code" and answer.output_text == direct.responses.create(model="code", **params).output_text
    events = list(client.responses.create(model="auto", stream=True, **params))  # type: ignore[call-overload]
    assert events[-1].type == "response.completed" and events[-1].response.usage is not None
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == answer.output_text

    claude = anthropic.Anthropic(base_url=real_gateway.url, api_key="x", max_retries=0, timeout=300)
    messages = [{"role": "user", "content": "what is the derivative of x^3 + 2x"}]
    greedy = {"temperature": 0.0}  # this SDK version has no `temperature` argument; vLLM reads it from the body
    raw_message = claude.messages.with_raw_response.create(model="auto", max_tokens=10, messages=messages,  # type: ignore[arg-type]
                                                           extra_body=greedy)
    assert raw_message.headers["x-coe-expert"] == "math"
    message = raw_message.parse()
    with claude.messages.stream(model="auto", max_tokens=10, messages=messages, extra_body=greedy) as stream:  # type: ignore[arg-type]
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert message.model == final.model == "math" and streamed == message.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == message.usage.output_tokens > 0
    # The stream's record closes just after its last bytes leave: wait for it.
    assert wait_until(lambda: gateway_metric(
        real_gateway, "coe_requests_total", expert="math", endpoint="messages", status="200") == 2)


def test_client_disconnect_aborts_the_vllm_request(real_gateway: ServerThread, local_engines: LocalEngines) -> None:
    # vLLM 0.32 has no abort counter (client aborts skip `vllm:request_success_total`), so its /metrics shows an
    # abort as: nothing running any more, no request finished, and far fewer tokens generated than asked for.
    base = engine_url(local_engines)
    finished_before = vllm_metric(base, "vllm:request_success_total")
    generated_before = vllm_metric(base, "vllm:generation_tokens_total")
    body = {"model": "general", "stream": True, "max_tokens": 1500, "temperature": 0.8, "seed": 1,
            "ignore_eos": True, "messages": [{"role": "user", "content": "Tell me a very long story about the sea."}]}
    with httpx.stream("POST", f"{real_gateway.url}/v1/chat/completions", json=body, timeout=300) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(8)]
        assert vllm_metric(base, "vllm:num_requests_running") == 1
    assert any('"content"' in line for line in received)
    assert wait_until(lambda: vllm_metric(base, "vllm:num_requests_running") == 0, timeout_s=30)
    time.sleep(2)  # had it not been aborted, it would still be generating now
    assert vllm_metric(base, "vllm:num_requests_running") == 0
    assert vllm_metric(base, "vllm:request_success_total") == finished_before
    assert vllm_metric(base, "vllm:generation_tokens_total") - generated_before < 1500
    assert wait_until(lambda: gateway_metric(real_gateway, "coe_client_disconnects_total", expert="general") >= 1)


def test_gateway_token_counts_equal_vllm_usage(real_gateway: ServerThread, local_engines: LocalEngines) -> None:
    base = engine_url(local_engines)
    experts = ("general", "code", "math")
    before = {e: gateway_metric(real_gateway, "coe_output_tokens_total", expert=e) for e in experts}
    prompt_before = {e: gateway_metric(real_gateway, "coe_prompt_tokens_total", expert=e) for e in experts}
    engine_before = vllm_metric(base, "vllm:generation_tokens_total")
    client = openai.OpenAI(base_url=f"{real_gateway.url}/v1", api_key="x", max_retries=0, timeout=300)
    usage = {e: [0, 0] for e in experts}
    for i, expert in enumerate(experts * 2):
        messages = [{"role": "user", "content": f"Say something short about the number {i}."}]
        if i % 2:
            answer = client.chat.completions.create(model=expert, messages=messages, max_tokens=12)  # type: ignore[arg-type]
            assert answer.usage is not None
            got = (answer.usage.prompt_tokens, answer.usage.completion_tokens)
        else:
            chunks = list(client.chat.completions.create(
                model=expert, messages=messages, max_tokens=12, stream=True,  # type: ignore[arg-type]
                stream_options={"include_usage": True}))
            assert chunks[-1].usage is not None
            got = (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens)
        usage[expert][0] += got[0]
        usage[expert][1] += got[1]
    for expert in experts:
        assert wait_until(lambda e=expert: gateway_metric(real_gateway, "coe_output_tokens_total", expert=e)
                          == before[e] + usage[e][1])
        assert gateway_metric(real_gateway, "coe_prompt_tokens_total", expert=expert) == (
            prompt_before[expert] + usage[expert][0])
    # vLLM counts per engine (LoRA experts share one): the engine's total equals the sum of the experts'.
    assert wait_until(lambda: vllm_metric(base, "vllm:generation_tokens_total")
                      == engine_before + sum(u[1] for u in usage.values()), timeout_s=15)


@pytest.mark.prometheus
def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    real_gateway: ServerThread, local_engines: LocalEngines, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed (make system-deps installs it)")
    port = free_port()
    engine = engine_url(local_engines).removeprefix("http://")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: coe-gateway\n    static_configs: [{{targets: ['127.0.0.1:{real_gateway.port}']}}]\n"
        f"  - job_name: vllm\n    static_configs: [{{targets: ['{engine}']}}]\n"
    )
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        assert wait_until(lambda: _up(api), timeout_s=60), (tmp_path / "prometheus.log").read_text()[-2000:]
        client = openai.OpenAI(base_url=f"{real_gateway.url}/v1", api_key="x", max_retries=0, timeout=300)
        for model, stream in (("auto", True), ("code", False), ("general", True), ("auto", False)):
            result = client.chat.completions.create(
                model=model, stream=stream, max_tokens=8,
                messages=[{"role": "user", "content": "How do I fix a null pointer exception in Java?"}])
            if stream:
                list(result)  # type: ignore[arg-type]
        # rate() needs two scrapes that saw the traffic: wait until every query has data, not a fixed time.
        failures: list[str] = []

        def every_query_has_data() -> bool:
            failures.clear()
            for query in promql_expressions():
                answer = httpx.get(f"{api}/query", params={"query": query.expr}, timeout=10).json()
                if answer.get("status") != "success":
                    failures.append(f"{query.where}: {answer.get('error')}")
                elif not answer["data"]["result"]:
                    failures.append(f"{query.where}: no data for {query.expr}")
            return not failures

        assert wait_until(every_query_has_data, timeout_s=60), "\n".join(failures)
    finally:
        process.terminate()
        process.wait(30)


def _up(api: str) -> bool:
    try:
        targets = httpx.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
    except (httpx.HTTPError, KeyError, ValueError):
        return False
    return len(targets) == 2 and all(t["health"] == "up" for t in targets)


def test_router_headers_are_sane(real_gateway: ServerThread) -> None:
    response = httpx.post(f"{real_gateway.url}/v1/chat/completions", timeout=300, json={
        "model": "auto", "max_tokens": 4,
        "messages": [{"role": "user", "content": "What is the integral of x squared from 0 to 3?"}]})
    assert response.status_code == 200
    assert response.headers["x-coe-category"] == "math"
    assert re.fullmatch(r"(\w+=0\.\d{4},){2}\w+=0\.\d{4}", response.headers["x-coe-alternatives"])
