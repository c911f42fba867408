"""SIGTERM during active streams: readiness drops, streams finish or end with an error event, exit code 0."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from coe_testing.fake_engine import FakeBehaviour, FakeEngine
from coe_testing.servers import ServerThread
from tests.observe import sse_events, wait_until

STREAMS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(tmp_path: Path, engine_url: str, grace: float) -> tuple[subprocess.Popen[bytes], str]:
    experts = {"fallback": "general", "experts": [
        {"name": "general", "url": f"{engine_url}/v1", "model": "upstream", "categories": ["general"]},
    ]}
    path = tmp_path / "experts.json"
    path.write_text(json.dumps(experts))
    port = free_port()
    with (tmp_path / "gateway.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "coe_testing.gateway_process", "--experts", str(path), "--port", str(port),
             "--grace", str(grace)],
            stdout=subprocess.DEVNULL, stderr=log,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_until(ready, timeout_s=60), "gateway did not become ready"
    return process, url


def refused(url: str) -> bool:
    """True once new connections are refused (the listener closed), while old streams may still run."""
    try:
        httpx.get(f"{url}/ready", timeout=2)
    except httpx.ConnectError:
        return True
    except httpx.TransportError:  # accepted just as the listener closed, then reset: ask again
        return False
    return False


def run_streams(url: str, results: list[list[object]]) -> list[threading.Thread]:
    body = {"model": "general", "stream": True, "messages": [{"role": "user", "content": "hello"}]}

    def one() -> None:
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
                results.append(sse_events(response.read()))
        except httpx.HTTPError as exc:
            results.append([f"transport error: {exc!r}"])

    threads = [threading.Thread(target=one) for _ in range(STREAMS)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.parametrize(("grace", "complete"), [(15.0, True), (0.5, False)])
def test_sigterm_during_twenty_streams(tmp_path: Path, grace: float, complete: bool) -> None:
    engine = FakeEngine("upstream", FakeBehaviour(tokens=30, gap_s=0.1))
    with ServerThread(engine, lifespan="off") as engine_server:
        process, url = start_gateway(tmp_path, engine_server.url, grace)
        try:
            results: list[list[object]] = []
            threads = run_streams(url, results)
            assert wait_until(lambda: engine.stats.active == STREAMS, timeout_s=20)
            process.send_signal(signal.SIGTERM)
            assert wait_until(lambda: refused(url), timeout_s=10), "the listener stayed open after SIGTERM"
            for thread in threads:
                thread.join(60)
            assert process.wait(30) == 0, (tmp_path / "gateway.log").read_text()
        finally:  # a failed check must not leave the gateway running into later tests
            if process.poll() is None:
                process.kill()
                process.wait(10)
    assert len(results) == STREAMS
    for events in results:
        assert events[-1] == "[DONE]", events[-3:]
        errors = [e for e in events[:-1] if isinstance(e, dict) and "error" in e]
        if complete:
            assert not errors
            assert events[-2]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]
        else:
            assert len(errors) == 1 and errors[0]["error"]["code"] == "shutdown"
