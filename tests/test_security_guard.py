"""The privacy guard on the request path, through the openai SDK: redact, block, allow; routing sees the result."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.privacy.guard import PrivacyGuard
from gateway.security_settings import SecuritySettings
from tests.fixtures_gateway import FakeStack
from tests.fixtures_security import write_keys

ROLES = """
roles:
  careful: {privacy: {policy: redact}}
  strict: {privacy: {policy: block}}
  trusted: {privacy: {policy: allow}}
keys: {red: careful, blk: strict, ok: trusted}
"""
SECRET_MAIL, SECRET_CARD = "jane.doe@example.com", "4111 1111 1111 1111"


@pytest.fixture
def guarded(stack_factory: Callable[..., FakeStack], tmp_path: Path) -> FakeStack:
    keys = write_keys(tmp_path / "keys.yaml", "red", "blk", "ok")
    roles = tmp_path / "roles.yaml"
    roles.write_text(ROLES)
    return stack_factory(api_keys_file=keys, security=SecuritySettings(roles_file=roles))


@pytest.fixture
def sdk(guarded: FakeStack) -> Iterator[Callable[[str], openai.OpenAI]]:
    made: list[openai.OpenAI] = []

    def build(key: str) -> openai.OpenAI:
        made.append(openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=f"sk-{key}", max_retries=0, timeout=10))
        return made[-1]

    yield build
    for client in made:
        client.close()


def messages() -> list[Any]:
    return [
        {"role": "system", "content": f"the operator is {SECRET_MAIL}"},
        {"role": "user", "content": f"python question from {SECRET_MAIL}, card {SECRET_CARD}"},
        {"role": "user", "content": [{"type": "text", "text": f"again {SECRET_MAIL}"}]},
    ]


def test_redact_rewrites_what_leaves_and_what_routing_sees(guarded: FakeStack,
                                                           sdk: Callable[[str], openai.OpenAI]) -> None:
    answer = sdk("red").chat.completions.create(model="auto", messages=messages(), temperature=0.3)
    assert answer.model == "code"  # routing still found the topic in the redacted text
    sent = guarded.engines["code"].stats.last_body
    assert [m["content"] for m in sent["messages"]] == [
        "the operator is <EMAIL_1>",
        "python question from <EMAIL_1>, card <CARD_1>",
        [{"type": "text", "text": "again <EMAIL_1>"}],
    ]
    assert sent["temperature"] == 0.3
    routed = guarded.router.calls[-1]
    assert "<EMAIL_1>" in routed and SECRET_MAIL not in routed and "4111" not in routed
    sdk("red").completions.create(model="general", prompt=[f"write to {SECRET_MAIL}", "nothing here"])
    assert guarded.engines["general"].stats.last_body["prompt"] == ["write to <EMAIL_1>", "nothing here"]


def test_block_is_a_400_naming_kinds_not_values(guarded: FakeStack, sdk: Callable[[str], openai.OpenAI]) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk("blk").chat.completions.create(model="auto", messages=messages())
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "personal_data_blocked" and error["param"] == "messages"
    assert "CARD" in error["message"] and "EMAIL" in error["message"]
    assert SECRET_MAIL not in error["message"] and "4111" not in error["message"]
    assert sum(e.stats.requests for e in guarded.engines.values()) == 0  # nothing left the gateway
    clean = sdk("blk").completions.create(model="auto", prompt="solve the equation x + 1 = 2")
    assert clean.model == "math"


def test_allow_forwards_the_text_unscanned(guarded: FakeStack, sdk: Callable[[str], openai.OpenAI]) -> None:
    sdk("red").chat.completions.create(model="code", messages=messages())
    sdk("ok").chat.completions.create(model="code", messages=messages())
    assert guarded.engines["code"].stats.last_body["messages"][1]["content"].endswith(SECRET_CARD)
    metrics = httpx.get(f"{guarded.url}/metrics").text
    # Only the redacted request was scanned: with `allow` and no audit trail nothing would use the findings.
    assert 'coe_privacy_findings_total{kind="EMAIL",policy="redact"} 3.0' in metrics
    assert 'policy="allow"' not in metrics


def test_long_prompts_are_scanned_off_the_event_loop(guarded: FakeStack, sdk: Callable[[str], openai.OpenAI],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    scan = PrivacyGuard.apply

    def spy(self: PrivacyGuard, payload: dict[str, Any], policy: Any) -> Any:
        threads.append(threading.current_thread())
        return scan(self, payload, policy)

    monkeypatch.setattr(PrivacyGuard, "apply", spy)
    long_text = ("lorem ipsum dolor sit amet " * 300) + SECRET_MAIL  # about 8,100 characters
    sdk("red").chat.completions.create(model="general", messages=[{"role": "user", "content": "short"}])
    sdk("red").chat.completions.create(model="general", messages=[{"role": "user", "content": long_text}])
    loop_thread = guarded.gateway._thread
    assert threads[0] is loop_thread and threads[1] is not loop_thread
    assert guarded.engines["general"].stats.last_body["messages"][0]["content"].endswith("<EMAIL_1>")
