"""`coe router train` and `coe router eval` end to end on tiny data (hashing embedder, no model weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main


def train(data: Path, out: Path, *options: str) -> int:
    """`coe router train` with the model-free hashing embedder, quietly."""
    return main(["router", "train", "--data", str(data), "--out", str(out), "--embedder", "hashing", "--quiet",
                 *options])


def test_train_then_eval_json(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "artifact"
    code = train(tiny_data, out, "--seed", "1", "--eval-data", str(tiny_data))
    assert code == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["scores"]["tiny"]["n"] == 30 and meta["scores"]["tiny"]["file"] == "tiny.jsonl"

    assert (
        main(
            [
                "router",
                "eval",
                "--data",
                str(tiny_data),
                "--artifact",
                str(out),
                "--json",
                "--latency-queries",
                "5",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 30
    assert 0.0 <= report["ece"] <= 1.0
    assert report["accuracy"] > 0.9
    assert set(report["per_category"]) == {"code", "legal", "medical"}
    assert set(report["per_category"]["code"]) == {"precision", "recall", "f1", "support"}
    assert report["latency"]["n"] == 5


def test_eval_prints_a_table(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "artifact"
    train(tiny_data, out, "--classifier", "knn", "--param", "k=3")
    main(["router", "eval", "--data", str(tiny_data), "--artifact", str(out), "--latency-queries", "3"])
    printed = capsys.readouterr().out
    assert "macro_f1=" in printed and "confusion" in printed and "p50=" in printed


def test_custom_field_names(tmp_path: Path) -> None:
    data = tmp_path / "custom.jsonl"
    rows = [{"text": f"{word} question {i}", "label": word} for word in ("alpha", "beta") for i in range(6)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "artifact"
    assert train(data, out, "--prompt-field", "text", "--label-field", "label") == 0
    assert json.loads((out / "meta.json").read_text())["categories"] == ["alpha", "beta"]


def test_attaching_a_fast_stage_again_keeps_the_second_stages_own_score(tiny_data: Path, tmp_path: Path) -> None:
    slow, fast = tmp_path / "slow", tmp_path / "fast"
    assert train(tiny_data, slow, "--eval-data", str(tiny_data)) == 0
    assert train(tiny_data, fast, "--seed", "1") == 0
    alone = json.loads((slow / "meta.json").read_text())["scores"]["tiny"]

    def cascade(threshold: str) -> dict:
        assert main(["router", "cascade", "--artifact", str(slow), "--fast", str(fast), "--threshold", threshold,
                     "--eval-data", str(tiny_data)]) == 0
        return json.loads((slow / "meta.json").read_text())["scores"]

    first = cascade("0.9")
    assert first["tiny_second_stage_alone"] == alone and "second_stage_share" in first["tiny"]
    again = cascade("0.6")  # the artifact is a cascade now: its score is the previous cascade's, not the stage's
    assert again["tiny_second_stage_alone"] == alone
