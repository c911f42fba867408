"""Several uvicorn workers: `/metrics` merges every worker's counts; SIGTERM drains streams as with one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from coe_testing.fake_engine import FakeBehaviour, FakeEngine
from coe_testing.servers import ServerThread
from gateway.registry import default_router_artifact
from tests.observe import wait_until
from tests.test_shutdown import STREAMS, free_port, run_streams

pytestmark = pytest.mark.slow


def two_workers(tmp_path: Path, engine_url: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """`coe serve --workers 2` in front of one engine (expert `general`), ready; the process and its URL."""
    experts = {"fallback": "general", "experts": [
        {"name": "general", "url": f"{engine_url}/v1", "model": "up", "categories": ["general"]}]}
    (tmp_path / "experts.json").write_text(json.dumps(experts))
    (tmp_path / "prom").mkdir()
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), **env}
    with (tmp_path / "gateway.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--experts", str(tmp_path / "experts.json"),
             "--port", str(port), "--workers", "2", "--log-level", "warning"], stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    if not wait_until(lambda: _ready(url), timeout_s=180):
        process.kill()
        pytest.fail((tmp_path / "gateway.log").read_text()[-3000:])
    return process, url


def test_metrics_are_merged_across_workers(tmp_path: Path) -> None:
    if not (default_router_artifact() / "meta.json").is_file():
        pytest.skip("the default router artifact is missing (make router-artifact)")
    with ServerThread(FakeEngine("up"), lifespan="off") as engine:
        process, url = two_workers(tmp_path, engine.url)
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                for _ in range(20):
                    with httpx.Client(base_url=url, timeout=30) as fresh:  # new connections spread over workers
                        fresh.post("/v1/chat/completions", json={
                            "model": "general", "messages": [{"role": "user", "content": "hi"}]})
                text = client.get("/metrics").text
        finally:
            process.terminate()
            process.wait(60)
    line = next(x for x in text.splitlines()
                if x.startswith('coe_requests_total{') and 'expert="general"' in x and 'status="200"' in x)
    assert float(line.rsplit(" ", 1)[1]) == 20


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_sigterm_drains_streams_in_every_worker(tmp_path: Path) -> None:
    """With workers, SIGTERM still gives running streams the grace period, then one `shutdown` error event."""
    if not (default_router_artifact() / "meta.json").is_file():
        pytest.skip("the default router artifact is missing (make router-artifact)")
    engine = FakeEngine("up", FakeBehaviour(tokens=40, gap_s=0.1))  # 4 s: longer than the grace, shorter than uvicorn's
    with ServerThread(engine, lifespan="off") as engine_server:
        process, url = two_workers(tmp_path, engine_server.url, COE_SHUTDOWN_GRACE_S="0.5")
        try:
            results: list[list[object]] = []
            threads = run_streams(url, results)
            assert wait_until(lambda: engine.stats.active == STREAMS, timeout_s=20)
            process.send_signal(signal.SIGTERM)
            for thread in threads:
                thread.join(60)
            assert process.wait(30) == 0, (tmp_path / "gateway.log").read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
    assert len(results) == STREAMS
    for events in results:
        assert events[-1] == "[DONE]", events[-3:]
        errors = [e for e in events[:-1] if isinstance(e, dict) and "error" in e]
        assert len(errors) == 1 and errors[0]["error"]["code"] == "shutdown", events[-3:]
