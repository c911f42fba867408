"""`coe experts eval` against the real local vLLM engines: one item per category, two experts scored."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gateway.cli import main
from tests.fixtures_engines import LocalEngines

pytestmark = pytest.mark.vllm

EVAL_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "experts" / "eval"
# Three categories: code (its answers run unit tests), legal (the adapter's own), general (the base model's).
# Every category and expert through the same code is covered with fake engines in test_composition_*.py; here
# each reference likelihood costs 5-10 s of vLLM-CPU time.
CATEGORIES = {"code", "legal", "general"}


def test_eval_scores_the_experts_on_each_category_from_the_engines(
    local_engines: LocalEngines, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not EVAL_DATA.is_dir():
        pytest.skip(f"expert eval data not found at {EVAL_DATA}")
    out = tmp_path / "eval"
    data = [str(EVAL_DATA / f"{category}.jsonl") for category in sorted(CATEGORIES)]
    args = ["experts", "eval", "--experts", str(local_engines.registry_path), "--data", *data]
    # Two experts, one item per category: reference likelihoods are slow on vLLM-CPU (see docs/composition.md).
    args += ["--expert", "general", "--expert", "legal", "--limit", "1"]
    assert main([*args, "--json", "--out", str(out), "--concurrency", "4"]) == 0
    printed = json.loads(capsys.readouterr().out)
    experts = {"general", "legal"}
    table = printed["table"]
    assert set(table) == CATEGORIES
    for category, cells in table.items():
        assert set(cells) == experts, category
        for cell in cells.values():
            assert cell["n"] == 1 and cell["low"] <= cell["score"] <= cell["high"] < 0 and math.isfinite(cell["low"])
    # Scores come from the engines: the adapters change the likelihoods, so the experts' columns differ.
    columns = {e: tuple(table[c][e]["score"] for c in sorted(CATEGORIES)) for e in experts}
    assert len(set(columns.values())) == len(experts)
    answers = [json.loads(line) for p in (out / "answers").glob("*.jsonl") for line in p.read_text().splitlines()]
    assert len(answers) == len(CATEGORIES) * len(experts)
    assert not [a for a in answers if a["error"]]
    assert any(a["output"].strip() for a in answers)
    assert printed["report"]["all"]["n"] == len(CATEGORIES)

    # A second run answers from the cache: same table, no engine asked again.
    assert main([*args, "--json", "--out", str(out)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["table"] == table
