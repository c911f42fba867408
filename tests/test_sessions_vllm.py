"""A multi-turn conversation through the gateway with the shipped router, answered by the real local vLLM engines."""

from __future__ import annotations

import openai
import pytest

from coe_testing.servers import ServerThread
from gateway.app import create_app
from gateway.settings import Settings
from tests.fixtures_engines import LocalEngines

pytestmark = pytest.mark.vllm


def test_a_conversation_stays_with_its_expert_on_real_engines(local_engines: LocalEngines) -> None:
    settings = Settings(experts=local_engines.registry_path, probe_interval_s=5.0)
    with ServerThread(create_app(settings, local_engines.registry)) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=300)
        messages: list[dict[str, str]] = []
        seen: list[tuple[str, str]] = []
        for turn in ("Write a Python function that returns the reverse of a string.", "and in rust?", "why?"):
            messages.append({"role": "user", "content": turn})
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=messages, max_tokens=16, temperature=0.0,  # type: ignore[arg-type]
                extra_headers={"x-session-id": "real-conversation"},
            )
            answer = raw.parse()
            text = answer.choices[0].message.content or ""
            assert text.strip() and answer.model == raw.headers["x-coe-expert"]
            messages.append({"role": "assistant", "content": text})
            seen.append((raw.headers["x-coe-expert"], raw.headers["x-coe-route-reason"]))
        assert seen == [("code", "classified"), ("code", "session"), ("code", "session")]
        value = gateway.server.config.app.state.coe.metrics.registry.get_sample_value(  # type: ignore[attr-defined]
            "coe_session_decisions_total", {"decision": "kept"})
        assert value == 2
