"""Several uvicorn workers: `/metrics` merges every worker's counts (prometheus multiprocess mode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from coe_testing.fake_engine import FakeEngine
from coe_testing.servers import ServerThread
from gateway.registry import default_router_artifact
from tests.observe import wait_until
from tests.test_shutdown import free_port

pytestmark = pytest.mark.slow


def test_metrics_are_merged_across_workers(tmp_path: Path) -> None:
    if not (default_router_artifact() / "meta.json").is_file():
        pytest.skip("the default router artifact is missing (make router-artifact)")
    with ServerThread(FakeEngine("up"), lifespan="off") as engine:
        experts = {"fallback": "general", "experts": [
            {"name": "general", "url": f"{engine.url}/v1", "model": "up", "categories": ["general"]}]}
        (tmp_path / "experts.json").write_text(json.dumps(experts))
        port = free_port()
        env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
        (tmp_path / "prom").mkdir()
        with (tmp_path / "gateway.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--experts", str(tmp_path / "experts.json"),
                 "--port", str(port), "--workers", "2", "--log-level", "warning"], stdout=log, stderr=log, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            assert wait_until(lambda: _ready(url), timeout_s=180), (tmp_path / "gateway.log").read_text()[-3000:]
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
