"""Limits that hold across replicas: two real gateway processes sharing one real redis-server, then Redis dies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from coe_testing.fake_engine import FakeEngine
from coe_testing.servers import ServerThread
from tests.fixtures_security import RedisServer, free_port, write_keys
from tests.observe import wait_until

ROLES = """
roles:
  burst: {requests_per_minute: 5}
  meter: {user_tokens_per_minute: 30}
keys: {rq: burst, tk: meter}
"""
HELLO: Any = [{"role": "user", "content": "hello there"}]  # the fake engine: 2 prompt tokens + 8 completion tokens


def start_gateway(tmp_path: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, Path]:
    port, log = free_port(), tmp_path / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "coe_testing.gateway_process", "--experts", str(tmp_path / "experts.json"),
             "--port", str(port), "--grace", "2"],
            stdout=subprocess.DEVNULL, stderr=sink, env={**os.environ, **env},
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None  # exited: stop waiting, the assertion below says so

    assert wait_until(ready, timeout_s=60) and process.poll() is None, log.read_text()
    return process, url, log


@pytest.fixture
def replicas(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[str, str, Path, Path]]:
    """Two gateways on one Redis: A fails open when Redis is gone, B fails closed."""
    engine = ServerThread(FakeEngine("upstream"), lifespan="off").start()
    (tmp_path / "experts.json").write_text(json.dumps({"fallback": "general", "experts": [
        {"name": "general", "url": f"{engine.url}/v1", "model": "upstream", "categories": ["general"]}]}))
    write_keys(tmp_path / "keys.yaml", "rq", "tk")
    (tmp_path / "roles.yaml").write_text(ROLES)
    env = {"COE_API_KEYS_FILE": str(tmp_path / "keys.yaml"), "COE_ROLES_FILE": str(tmp_path / "roles.yaml"),
           "COE_REDIS_URL": redis_server.url, "COE_REDIS_TIMEOUT_S": "0.5"}
    a, url_a, log_a = start_gateway(tmp_path, "a", {**env, "COE_LIMITS_FAIL_OPEN": "true"})
    b, url_b, log_b = start_gateway(tmp_path, "b", {**env, "COE_LIMITS_FAIL_OPEN": "false"})
    try:
        yield url_a, url_b, log_a, log_b
    finally:
        for process in (a, b):
            process.terminate()
            process.wait(30)
        engine.stop()


def status(url: str, key: str, stream: bool = False) -> tuple[int, dict[str, str]]:
    """The status the SDK saw (no retries), and the response headers."""
    with openai.OpenAI(base_url=f"{url}/v1", api_key=f"sk-{key}", max_retries=0, timeout=10) as client:
        try:
            if stream:
                for _ in client.chat.completions.create(model="auto", messages=HELLO, stream=True):
                    pass
                return 200, {}
            raw = client.chat.completions.with_raw_response.create(model="auto", messages=HELLO)
            return raw.status_code, dict(raw.headers)
        except openai.APIStatusError as error:
            assert set(error.body or {}) == {"message", "type", "param", "code"}
            return error.status_code, dict(error.response.headers)


def metric(url: str, series: str) -> float:
    """One series' value from a gateway's /metrics (0 when absent)."""
    lines = [line for line in httpx.get(f"{url}/metrics").text.splitlines() if line.startswith(series + " ")]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_limits_hold_for_the_pair_and_degrade_when_redis_dies(
    replicas: tuple[str, str, Path, Path], redis_server: RedisServer,
) -> None:
    url_a, url_b, log_a, log_b = replicas
    # Requests: 5 per minute for the role, whichever replica answers.
    seen = [status(url_a if i % 2 else url_b, "rq") for i in range(7)]
    assert [s for s, _ in seen] == [200] * 5 + [429, 429]
    assert 1 <= int(seen[-1][1]["retry-after"]) <= 60
    # Tokens: 30 per minute per user, counted from real usage after each answer (10 each, streams included).
    spent = []
    for url, stream in ((url_a, False), (url_b, True), (url_a, False), (url_b, False)):
        spent.append(status(url, "tk", stream)[0])
        time.sleep(0.3)  # usage is counted just after the answer leaves; give it that moment
    assert spent == [200, 200, 200, 429]
    assert sum(metric(url, 'coe_access_refused_total{code="rate_limit_exceeded",status="429"}')
               for url in (url_a, url_b)) == 3
    # Redis goes away: A admits (fail open), B refuses with a 503; both log it and count it; never a 500.
    redis_server.process.kill()
    redis_server.process.wait(10)
    assert status(url_a, "tk")[0] == 200
    closed, headers = status(url_b, "tk")
    assert closed == 503 and headers["retry-after"]
    assert metric(url_a, "coe_limits_store_failures_total") >= 1
    assert metric(url_b, "coe_limits_store_failures_total") >= 1
    assert "failing open" in log_a.read_text() and "failing closed" in log_b.read_text()
