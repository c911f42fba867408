"""The local profile's real vLLM engines answer a chat completion under every expert name."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures_engines import LocalEngines

pytestmark = pytest.mark.vllm


def test_every_expert_name_answers_a_chat_completion(local_engines: LocalEngines) -> None:
    with httpx.Client(timeout=120) as client:
        for name, base_url in local_engines.base_urls.items():
            response = client.post(
                f"{base_url}/chat/completions",
                json={
                    "model": name,
                    "max_tokens": 12,
                    "temperature": 0,
                    "messages": [{"role": "user", "content": "What is 2 plus 2?"}],
                },
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model"] == name
            assert body["choices"][0]["message"]["content"].strip()
            assert 0 < body["usage"]["completion_tokens"] <= 12


def test_adapters_change_the_answer(local_engines: LocalEngines) -> None:
    answers = {}
    with httpx.Client(timeout=120) as client:
        for name in ("general", "code", "medical"):
            response = client.post(
                f"{local_engines.base_urls[name]}/chat/completions",
                json={
                    "model": name,
                    "max_tokens": 24,
                    "temperature": 0,
                    "messages": [{"role": "user", "content": "How do I stay healthy while coding?"}],
                },
            )
            answers[name] = response.json()["choices"][0]["message"]["content"]
    assert len(set(answers.values())) == 3, answers
