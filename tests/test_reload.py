"""Hot reload (POST /admin/reload, SIGHUP) with streams in flight, through the real SDK and real uvicorn."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from coe_testing.fake_engine import FakeBehaviour, FakeEngine
from coe_testing.routers import KeywordRouter
from coe_testing.servers import ServerThread
from gateway.app import create_app
from gateway.auth import hash_key
from gateway.state import GatewayState
from tests.fixtures_gateway import make_settings
from tests.observe import wait_until
from tests.test_shutdown import free_port

ENGINES = ("code", "math", "general", "extra")
V1 = {"code": ("code", ["code"]), "math": ("math", ["math"]), "general": ("general", ["general", "multilingual"])}
# Adds `algebra` (on its own engine) for math, removes `math`, remaps `multilingual` from general to code.
V2 = {"code": ("code", ["code", "multilingual"]), "algebra": ("extra", ["math"]), "general": ("general", ["general"])}
KEYS = {"admin-key": True, "user-key": False}


@dataclass
class ReloadStack:
    engines: dict[str, FakeEngine]
    urls: dict[str, str]
    folder: Path
    gateway: ServerThread | None = None
    router_loads: list[Path] = field(default_factory=list)

    @property
    def experts_file(self) -> Path:
        return self.folder / "experts.yaml"

    @property
    def keys_file(self) -> Path:
        return self.folder / "keys.yaml"

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    @property
    def state(self) -> GatewayState:
        assert self.gateway is not None
        state: GatewayState = self.gateway.server.config.app.state.coe  # type: ignore[attr-defined]
        return state

    def write(self, experts: dict[str, tuple[str, list[str]]], **extra: Any) -> None:
        self.experts_file.write_text(yaml.safe_dump({
            "fallback": "general",
            "router": {"artifact": str(self.folder / "router")},
            "experts": [{"name": name, "url": self.urls[engine], "model": f"upstream-{engine}", "categories": cats}
                        for name, (engine, cats) in experts.items()],
            **extra,
        }))

    def write_keys(self, keys: dict[str, bool]) -> None:
        self.keys_file.write_text(yaml.safe_dump(
            {"keys": [{"name": k, "sha256": hash_key(k), "admin": admin} for k, admin in keys.items()]}))

    def reload(self, key: str | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(f"{self.url}/admin/reload", headers=headers, timeout=30)

    def models(self) -> list[str]:
        return [m.id for m in client(self).models.list()]

    def metric(self, name: str, **labels: str) -> float | None:
        return self.state.metrics.registry.get_sample_value(name, labels)


def client(stack: ReloadStack, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=key, max_retries=0, timeout=20)


@pytest.fixture
def reload_stack(tmp_path: Path) -> Iterator[ReloadStack]:
    engines = {name: FakeEngine(f"upstream-{name}") for name in ENGINES}
    servers = [ServerThread(engine, lifespan="off").start() for engine in engines.values()]
    (tmp_path / "router").mkdir()
    (tmp_path / "router" / "meta.json").write_text(json.dumps({"categories": list(KeywordRouter.categories)}))
    stack = ReloadStack(engines, {n: f"{s.url}/v1" for n, s in zip(ENGINES, servers, strict=True)}, tmp_path)
    yield stack
    if stack.gateway is not None:
        stack.gateway.stop()
    for server in servers:
        server.stop()


def start(stack: ReloadStack, keys: bool = False) -> ReloadStack:
    stack.write(V1)
    if keys:
        stack.write_keys(KEYS)

    def load(artifact: Path) -> KeywordRouter:
        stack.router_loads.append(artifact)
        if (artifact / "broken").exists():
            raise ValueError("meta.json does not match the arrays")
        return KeywordRouter()

    settings = make_settings(experts=stack.experts_file, api_keys_file=stack.keys_file if keys else None)
    stack.gateway = ServerThread(create_app(settings, router_loader=load)).start()
    return stack


def stream_in_thread(stack: ReloadStack, model: str, prompt: str, out: dict[str, Any]) -> threading.Thread:
    """A stream whose first chunk has arrived before this returns; the rest is read in a thread."""
    chunks = iter(client(stack).chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": prompt}]))
    first = next(chunks)

    def rest() -> None:
        out["chunks"] = [first, *chunks]

    thread = threading.Thread(target=rest)
    thread.start()
    return thread


def test_streams_in_flight_finish_on_their_experts_across_add_remove_remap(reload_stack: ReloadStack) -> None:
    stack = start(reload_stack)
    for name in ("code", "math"):
        stack.engines[name].behaviour = FakeBehaviour(tokens=30, gap_s=0.05)
    kept_limiter = stack.state.service.dispatcher.limiters["code"]  # type: ignore[union-attr]
    assert wait_until(lambda: all(h["probed"] for h in stack.state.health.snapshot().values()))  # start-up probe
    stack.state.health.failure("general", "seen before the reload")
    routed: dict[str, Any] = {}
    pinned: dict[str, Any] = {}
    threads = [stream_in_thread(stack, "auto", "write a python function", routed),
               stream_in_thread(stack, "math", "solve the equation", pinned)]

    stack.write(V2)
    answer = stack.reload()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["added"], body["removed"], body["changed"]) == (["algebra"], ["math"], ["code", "general"])
    assert body["router_reloaded"] is False and stack.router_loads == [stack.folder / "router"]
    assert stack.metric("coe_inflight_requests", expert="math") == 1  # its stream still runs: series kept

    # New requests see the new registry at once.
    assert stack.models() == ["auto", "code", "algebra", "general"]
    raw = client(stack).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "solve the equation x^2 = 4"}])
    assert raw.headers["x-coe-expert"] == "algebra" and stack.engines["extra"].stats.requests == 1
    with pytest.raises(openai.NotFoundError):
        client(stack).chat.completions.create(model="math", messages=[{"role": "user", "content": "hi"}])

    # Streams in flight end, whole, on the experts they began on.
    for thread in threads:
        thread.join(20)
    for out, expert in ((routed, "code"), (pinned, "math")):
        chunks = out["chunks"]
        assert {c.model for c in chunks} == {expert}
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(
            f" tok{i}" for i in range(30))
        assert chunks[-1].choices[0].finish_reason == "stop"
    assert stack.engines["math"].stats.completed == 1

    # The removed expert's series stop once its stream is done; the new expert's exist; kept state stays.
    assert wait_until(lambda: b'expert="math"' not in stack.state.metrics.exposition(), timeout_s=5)
    assert stack.metric("coe_expert_up", expert="algebra") == 1
    assert stack.state.service.dispatcher.limiters["code"] is kept_limiter  # type: ignore[union-attr]
    assert stack.state.health.snapshot()["general"]["consecutive_failures"] == 1
    assert "math" not in stack.state.health.snapshot()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("experts: [\n  - name: code\n  url: [", "not valid YAML"),
        (None, "experts.0.url: Value error, must start with http:// or https://"),
        ("fallback: nobody\nexperts: [{name: code, url: 'http://x/v1', model: m}]", "fallback 'nobody'"),
    ],
)
def test_a_broken_experts_file_changes_nothing(reload_stack: ReloadStack, content: str | None, expected: str) -> None:
    stack = start(reload_stack)
    before = stack.state.registry
    if content is None:
        stack.write(V2)
        raw = yaml.safe_load(stack.experts_file.read_text())
        raw["experts"][0]["url"] = "ftp://example/v1"
        stack.experts_file.write_text(yaml.safe_dump(raw))
    else:
        stack.experts_file.write_text(content)
    answer = stack.reload()
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_configuration"
    assert str(stack.experts_file) in error["message"] and expected in error["message"]
    assert stack.state.registry is before and stack.models() == ["auto", "code", "math", "general"]


def test_a_broken_router_artifact_changes_nothing(reload_stack: ReloadStack) -> None:
    stack = start(reload_stack)
    stack.write(V2)
    (stack.folder / "router" / "broken").write_text("x")
    answer = stack.reload()
    assert answer.status_code == 422
    message = answer.json()["error"]["message"]
    assert str(stack.folder / "router") in message and "router.artifact" in message and "does not match" in message
    assert stack.models() == ["auto", "code", "math", "general"]
    (stack.folder / "router" / "broken").unlink()
    (stack.folder / "router" / "meta.json").write_text(json.dumps({"categories": list(KeywordRouter.categories),
                                                                   "version": 2}))
    answer = stack.reload()
    assert answer.status_code == 200 and answer.json()["router_reloaded"] is True
    assert len(stack.router_loads) == 3  # start, the broken try, the changed artifact


def test_keys_reload_and_admin_only(reload_stack: ReloadStack) -> None:
    stack = start(reload_stack, keys=True)
    assert stack.reload().status_code == 401
    refused = stack.reload("user-key")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    with pytest.raises(openai.AuthenticationError):
        client(stack, "new-key").models.list()
    stack.write_keys({**KEYS, "new-key": False})
    assert stack.reload("admin-key").status_code == 200
    assert "auto" in [m.id for m in client(stack, "new-key").models.list()]
    # A broken key file (with a valid new experts file beside it) changes nothing at all.
    stack.write(V2)
    stack.keys_file.write_text("keys: [{name: x, sha256: not-a-hash}]")
    answer = stack.reload("admin-key")
    assert answer.status_code == 422 and str(stack.keys_file) in answer.json()["error"]["message"]
    assert "sha256" in answer.json()["error"]["message"]
    assert [m.id for m in client(stack, "new-key").models.list()] == ["auto", "code", "math", "general"]


def test_sighup_reloads_a_running_server(reload_stack: ReloadStack) -> None:
    stack = reload_stack
    stack.write(V1)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (stack.folder / "gateway.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "coe_testing.gateway_process", "--experts", str(stack.experts_file),
             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log)
    try:
        def models() -> list[str]:
            try:
                return [m["id"] for m in httpx.get(f"{url}/v1/models", timeout=2).json()["data"]]
            except httpx.HTTPError:
                return []

        assert wait_until(lambda: models() == ["auto", "code", "math", "general"], timeout_s=60)
        stack.write(V2)
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: models() == ["auto", "code", "algebra", "general"], timeout_s=10)
        stack.experts_file.write_text("experts: [")  # broken: logged, and the running registry stays
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: b"reload on SIGHUP failed" in (stack.folder / "gateway.log").read_bytes(), 10)
        assert models() == ["auto", "code", "algebra", "general"] and process.poll() is None
    finally:
        process.terminate()
        process.wait(30)
