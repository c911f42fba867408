"""Model cards: what each engine says of its model reaches the client, under the expert's name."""

from __future__ import annotations

import json
from typing import Any

from gateway.model_cards import ModelCards
from gateway.registry import ExpertConfig


def expert(name: str, model: str) -> ExpertConfig:
    return ExpertConfig(name=name, url="http://127.0.0.1:9/v1", model=model, categories=[name], description=name)


def models_answer(*cards: dict[str, Any]) -> bytes:
    return json.dumps({"object": "list", "data": list(cards)}).encode()


def vllm_card(model: str, max_model_len: int) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1, "owned_by": "vllm", "root": f"/models/{model}",
            "parent": None, "max_model_len": max_model_len, "permission": [{"allow_sampling": True}]}


def test_an_experts_card_carries_its_engines_fields_under_the_experts_name() -> None:
    cards, code = ModelCards(), expert("code", "qwen-coder")
    adapter = {**vllm_card("other-lora", 512), "parent": "qwen-coder"}
    cards.observe(code, models_answer(adapter, vllm_card("qwen-coder", 4096)))
    card = cards.card(code, created=7)
    assert (card["id"], card["created"], card["owned_by"]) == ("code", 7, "coe")
    assert (card["root"], card["parent"], card["max_model_len"]) == ("/models/qwen-coder", None, 4096)
    assert card["permission"] == [{"allow_sampling": True}]
    assert (card["description"], card["categories"]) == ("code", ["code"])


def test_a_malformed_or_foreign_answer_changes_nothing() -> None:
    cards, code = ModelCards(), expert("code", "qwen-coder")
    cards.observe(code, models_answer(vllm_card("qwen-coder", 4096)))
    for body in (b"not json", b"[]", b'{"data": 3}', models_answer(vllm_card("someone-else", 1))):
        cards.observe(code, body)
    assert cards.card(code, 0)["max_model_len"] == 4096
    assert "max_model_len" not in cards.card(expert("code", "another-model"), 0)  # the served model changed


def test_the_routed_card_promises_the_smallest_context_and_only_once_every_engine_told() -> None:
    cards, code, maths = ModelCards(), expert("code", "a"), expert("math", "b")
    cards.observe(code, models_answer(vllm_card("a", 4096)))
    assert "max_model_len" not in cards.routed_card([code, maths], 0)
    cards.observe(maths, models_answer(vllm_card("b", 2048)))
    routed = cards.routed_card([code, maths], 0)
    assert (routed["id"], routed["max_model_len"]) == ("auto", 2048)
