"""GET /admin/experts and /admin/config on real uvicorn: live expert state, the running config without secrets."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
import yaml

from coe_testing.fake_engine import FakeBehaviour
from gateway.admin_views import redact
from tests.fixtures_gateway import FakeStack
from tests.observe import wait_until
from tests.test_reload import ReloadStack, start
from tests.test_reload import reload_stack as reload_stack  # the fixture, shared


def admin_get(url: str, path: str, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{url}/admin/{path}", headers=headers, timeout=10)


def expert_row(url: str, name: str) -> dict[str, Any]:
    rows = admin_get(url, "experts").json()["data"]
    return next(row for row in rows if row["name"] == name)


def test_experts_view_shows_in_flight_queue_breaker_and_ttft(stack_factory: Callable[..., FakeStack]) -> None:
    stack = stack_factory(max_concurrency=1, max_queue=4, queue_timeout_s=10.0)
    stack.engines["code"].behaviour = FakeBehaviour(tokens=20, gap_s=0.05, first_delay_s=0.05)
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0, timeout=20)

    def ask() -> None:
        list(client.chat.completions.create(model="code", stream=True, messages=[{"role": "user", "content": "x"}]))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: (r := expert_row(stack.url, "code"))["in_flight"] == 1 and r["queued"] == 1)
    row = expert_row(stack.url, "code")
    assert (row["capacity"], row["state"], row["categories"]) == (1, "up", ["code"])
    for thread in threads:
        thread.join(20)
    row = expert_row(stack.url, "code")
    assert (row["in_flight"], row["queued"], row["ttft"]["samples"]) == (0, 0, 2)
    assert 0.05 <= row["ttft"]["p50_s"] <= row["ttft"]["p90_s"] < 5
    for _ in range(3):
        stack.state.health.failure("math", "connect")
    math = expert_row(stack.url, "math")
    assert math["state"] == "down" and math["breaker"]["state"] == "open"
    assert (math["breaker"]["times_opened"], math["breaker"]["last_error"]) == (1, "connect")
    assert expert_row(stack.url, "general")["ttft"] == {"samples": 0, "p50_s": None, "p90_s": None, "last_s": None}


def test_config_view_redacts_secrets_and_names_its_sources(reload_stack: ReloadStack) -> None:
    stack = start(reload_stack, keys=True)
    raw = yaml.safe_load(stack.experts_file.read_text())
    raw["experts"][0]["launch"] = {"engine": "vllm", "env": {"HF_TOKEN": "hf_secret_value"}, "api_key": "sk-1",
                                   "max_num_batched_tokens": 512}
    raw["experts"][1]["url"] = raw["experts"][1]["url"].replace("http://", "http://user:pa55@")
    stack.experts_file.write_text(yaml.safe_dump(raw))
    assert stack.reload("admin-key").status_code == 200
    answer = admin_get(stack.url, "config", "admin-key")
    assert answer.status_code == 200
    text = answer.text
    for secret in ("hf_secret_value", "sk-1", "pa55", hashlib.sha256(b"admin-key").hexdigest()):
        assert secret not in text
    body = answer.json()
    launch = body["registry"]["experts"][0]["launch"]
    assert launch == {"engine": "vllm", "env": {"HF_TOKEN": "[redacted]"}, "api_key": "[redacted]",
                      "max_num_batched_tokens": 512}
    assert body["registry"]["experts"][1]["url"].startswith("http://[redacted]@127.0.0.1:")
    assert body["registry"]["router"]["session"]["max_sessions"] == 100_000
    assert {k["name"]: k["admin"] for k in body["keys"]} == {"admin-key": True, "user-key": False}
    sources = body["sources"]
    assert sources["experts_file"] == {"path": str(stack.experts_file),
                                       "sha256": hashlib.sha256(stack.experts_file.read_bytes()).hexdigest()}
    assert sources["keys_file"]["sha256"] == hashlib.sha256(stack.keys_file.read_bytes()).hexdigest()
    assert sources["loaded_at"].endswith("Z")
    assert admin_get(stack.url, "experts", "admin-key").status_code == 200


@pytest.mark.parametrize("path", ["experts", "config"])
def test_admin_views_need_an_admin_key(reload_stack: ReloadStack, path: str) -> None:
    stack = start(reload_stack, keys=True)
    assert admin_get(stack.url, path).status_code == 401
    refused = admin_get(stack.url, path, "user-key")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"


def test_without_authentication_the_admin_views_are_open(fake_stack: FakeStack) -> None:
    assert admin_get(fake_stack.url, "experts").status_code == 200
    assert admin_get(fake_stack.url, "config").status_code == 200


def test_inline_passwords_and_url_credentials_are_redacted() -> None:
    dsn = "host=db user=coe password=s3cret dbname=audit"
    assert redact({"audit_dsn": dsn}) == {"audit_dsn": "host=db user=coe password=[redacted] dbname=audit"}
    assert redact("redis://:pw@cache:6379/0") == "redis://[redacted]@cache:6379/0"
    assert redact({"audit_dsn": "postgresql://coe:pw@db/audit?sslmode=require"}) == {
        "audit_dsn": "postgresql://[redacted]@db/audit?sslmode=require"}
