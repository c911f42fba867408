"""The audit trail through a real gateway: one record per request in SQLite or PostgreSQL, flushed on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from coe_testing.fake_engine import FakeBehaviour, FakeEngine
from coe_testing.servers import ServerThread
from gateway.cli import main
from gateway.security_settings import SecuritySettings
from tests.fixtures_gateway import FakeStack
from tests.fixtures_security import free_port, write_keys
from tests.observe import wait_until

ROLES = """
roles:
  plain: {experts: [general, math], privacy: {policy: redact}}
  keeper: {privacy: {policy: redact, store_text: true}}
  auditor: {admin: true}
keys: {alice: plain, bob: keeper, carol: auditor}
"""
MAIL = "jane.doe@example.com"
STREAMS = 16
ASK: Any = [{"role": "user", "content": f"solve the equation for {MAIL}"}]


def key_and_role_files(tmp_path: Path) -> tuple[Path, Path]:
    keys, roles = write_keys(tmp_path / "keys.yaml", "alice", "bob", "carol"), tmp_path / "roles.yaml"
    roles.write_text(ROLES)
    return keys, roles


def query(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["audit", "query", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def exercise(stack: FakeStack) -> None:
    """One of each: answered, streamed with text kept, unauthenticated, forbidden."""
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sk-alice", max_retries=0) as alice:
        alice.chat.completions.create(model="auto", messages=ASK)
        with pytest.raises(openai.PermissionDeniedError):
            alice.chat.completions.create(model="code", messages=ASK)
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sk-bob", max_retries=0) as bob:
        for _ in bob.chat.completions.create(model="auto", messages=ASK, stream=True):
            pass
    assert httpx.post(f"{stack.url}/v1/chat/completions", json={"messages": ASK}).status_code == 401


def test_one_record_per_request_in_sqlite(stack_factory: Callable[..., FakeStack], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    keys, roles = key_and_role_files(tmp_path)
    db = tmp_path / "audit.db"
    stack = stack_factory(api_keys_file=keys, security=SecuritySettings(roles_file=roles, audit_db=db))
    exercise(stack)

    def admin(key: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer sk-{key}"} if key else {}
        return httpx.get(f"{stack.url}/admin/audit", params={"since": "10m"}, headers=headers)

    # An admin reads the trail over HTTP while the gateway runs; other roles may not.
    assert wait_until(lambda: len(admin("carol").json()["data"]) == 4)
    assert admin("alice").status_code == 403 and admin("alice").json()["error"]["code"] == "admin_required"
    assert admin(None).status_code == 401  # refused, and audited as such
    stack.gateway.stop()  # the lifespan flushes the queue
    answered, forbidden = query(capsys, "--db", str(db), "--subject", "alice")
    assert answered["role"] == "plain" and answered["expert"] == "math" and answered["category"] == "math"
    assert answered["reason"] == "classified" and answered["status"] == 200 and answered["findings"] == {"EMAIL": 1}
    assert answered["prompt_tokens"] == 5 and answered["completion_tokens"] == 8 and answered["latency_ms"] > 0
    assert answered["prompt_text"] is None and answered["answer_text"] is None  # `plain` keeps no text
    assert forbidden["status"] == 403 and forbidden["expert"] is None
    (streamed,) = query(capsys, "--db", str(db), "--subject", "bob")
    assert streamed["status"] == 200 and streamed["prompt_text"] == "user: solve the equation for <EMAIL_1>"
    assert streamed["answer_text"] == "".join(f" tok{i}" for i in range(8))
    anonymous = query(capsys, "--db", str(db), "--status", "401")
    assert len(anonymous) == 2 and {r["subject"] for r in anonymous} == {None}
    assert MAIL.encode() not in db.read_bytes()  # values of personal data are never stored


def test_postgresql_trail_through_the_gateway(stack_factory: Callable[..., FakeStack], tmp_path: Path,
                                              postgres: str, capsys: pytest.CaptureFixture[str]) -> None:
    keys, roles = key_and_role_files(tmp_path)
    stack = stack_factory(api_keys_file=keys, security=SecuritySettings(roles_file=roles, audit_dsn=postgres))
    exercise(stack)
    stack.gateway.stop()
    rows = query(capsys, "--dsn", postgres)
    assert sorted(r["status"] for r in rows) == [200, 200, 401, 403]
    assert {r["subject"] for r in rows} == {"alice", "bob", None}


def test_sigterm_loses_no_audit_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Streams of about a second each are still running when SIGTERM comes; an auditor's transaction holds the
    # database meanwhile, so their records are still queued when the lifespan stops: only its flush saves them.
    engine_app = FakeEngine("upstream", FakeBehaviour(tokens=10, gap_s=0.1))
    engine = ServerThread(engine_app, lifespan="off").start()
    experts = tmp_path / "experts.json"
    experts.write_text(json.dumps({"fallback": "general", "experts": [
        {"name": "general", "url": f"{engine.url}/v1", "model": "upstream", "categories": ["general"]}]}))
    db, port = tmp_path / "audit.db", free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "coe_testing.gateway_process", "--experts", str(experts), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "COE_AUDIT_DB": str(db)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _ready(url), timeout_s=60)
        auditor = sqlite3.connect(db, isolation_level=None)
        auditor.execute("BEGIN EXCLUSIVE")

        def send(i: int) -> bool:
            body = {"model": "general", "stream": True, "messages": [{"role": "user", "content": f"hello {i}"}]}
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers={"x-request-id": f"req-{i}"},
                              timeout=30) as response:
                return response.status_code == 200 and response.read().endswith(b"data: [DONE]\n\n")

        with ThreadPoolExecutor(STREAMS) as pool:
            answers = pool.map(send, range(STREAMS))
            assert wait_until(lambda: engine_app.stats.active == STREAMS, timeout_s=30)
            process.send_signal(signal.SIGTERM)
            assert all(answers)
        time.sleep(1.0)  # the gateway is shutting down with records queued behind the lock
        auditor.execute("ROLLBACK")
        auditor.close()
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        engine.stop()
    ids = {r["request_id"] for r in query(capsys, "--db", str(db))}
    assert ids == {f"req-{i}" for i in range(STREAMS)}


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
