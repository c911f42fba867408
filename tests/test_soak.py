"""A bounded soak on loopback: thousands of streams, a third of the clients walking away, nothing leaks."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.observe import wait_until
from tests.test_shutdown import free_port

pytestmark = pytest.mark.slow

WARMUP, REQUESTS, CONCURRENCY, WALKAWAY_SHARE = 500, 5000, 16, 0.3


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def tcp_connections(pid: int, port: int, local: bool) -> int:
    """ESTABLISHED TCP sockets of `pid` whose local (or remote) port is `port`."""
    inodes = {p.resolve().name[8:-1] for p in Path(f"/proc/{pid}/fd").iterdir()
              if p.resolve().name.startswith("socket:")} if Path(f"/proc/{pid}/fd").exists() else set()
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            local_port, remote_port = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
            if fields[3] == "01" and fields[9] in inodes and (local_port if local else remote_port) == port:
                count += 1
    return count


def series(url: str) -> set[str]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


@pytest.fixture
def soak_stack(tmp_path: Path) -> Iterator[tuple[str, int, int, Path]]:
    engine_port, gateway_port = free_port(), free_port()
    experts = {"fallback": "general", "experts": [
        {"name": "general", "url": f"http://127.0.0.1:{engine_port}/v1", "model": "up", "categories": ["general"]},
        {"name": "code", "url": f"http://127.0.0.1:{engine_port}/v1", "model": "up", "categories": ["code"]},
    ]}
    (tmp_path / "experts.json").write_text(json.dumps(experts))
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        engine = subprocess.Popen([sys.executable, "-m", "coe_testing.fake_engine", "--port", str(engine_port),
                                   "--model", "up", "--tokens", "12", "--gap-s", "0.002"])
        gateway = subprocess.Popen([sys.executable, "-m", "coe_testing.gateway_process", "--experts",
                                    str(tmp_path / "experts.json"), "--port", str(gateway_port)], stderr=log)
    url = f"http://127.0.0.1:{gateway_port}"
    try:
        assert wait_until(lambda: _ready(url), timeout_s=60)
        yield url, gateway.pid, engine_port, log_path
    finally:
        for process in (gateway, engine):
            process.terminate()
            process.wait(30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def drive(url: str, count: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    plan = [(rng.random() < WALKAWAY_SHARE, rng.randint(0, 10), rng.choice(["auto", "general", "code"]))
            for _ in range(count)]
    outcome = {"complete": 0, "walked_away": 0}
    gate = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one(walk: bool, after: int, model: str) -> None:
            body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "python please"}]}
            async with gate, client.stream("POST", "/v1/chat/completions", json=body) as response:
                assert response.status_code == 200
                seen = 0
                async for line in response.aiter_lines():
                    if walk and seen >= after:
                        outcome["walked_away"] += 1
                        return
                    seen += 1 if line else 0
                    if line == "data: [DONE]":
                        outcome["complete"] += 1

        await asyncio.gather(*(one(*p) for p in plan))
    return outcome


def test_soak_leaks_nothing(soak_stack: tuple[str, int, int, Path]) -> None:
    url, pid, engine_port, log_path = soak_stack
    asyncio.run(drive(url, WARMUP, seed=1))
    assert wait_until(lambda: metric(url, "coe_inflight_requests") == 0)
    rss_before, series_before = rss_kib(pid), series(url)

    outcome = asyncio.run(drive(url, REQUESTS, seed=2))
    assert outcome["complete"] + outcome["walked_away"] == REQUESTS
    assert outcome["walked_away"] > REQUESTS * WALKAWAY_SHARE * 0.5

    assert wait_until(lambda: metric(url, "coe_inflight_requests") == 0, timeout_s=30)
    assert wait_until(lambda: tcp_connections(pid, int(url.rsplit(":", 1)[1]), local=True) == 0, timeout_s=30)
    assert tcp_connections(pid, engine_port, local=False) <= CONCURRENCY  # idle keep-alive only
    rss_after = rss_kib(pid)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith('{"request_id"')]
    growth = (rss_after - rss_before) / rss_before
    print(f"\nsoak: {REQUESTS} streams, {outcome['walked_away']} walked away; RSS {rss_before} -> {rss_after} KiB "
          f"({growth:+.1%}); {len(lines)} log lines; {len(series(url))} series")
    assert len(lines) == WARMUP + REQUESTS
    assert len({line["request_id"] for line in lines}) == len(lines)
    assert growth < 0.10
    assert series(url) == series_before
    requests_total = metric(url, "coe_requests_total")
    assert requests_total == WARMUP + REQUESTS
