"""`coe router eval --plots DIR` writes the confusion matrix and the reliability diagram as PNG files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from tests.test_router_cli import train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_eval_writes_both_pictures_and_reports_throughput(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "artifact"
    assert train(tiny_data, out) == 0
    plots = tmp_path / "plots"
    args = ["router", "eval", "--data", str(tiny_data), "--artifact", str(out), "--latency-queries", "20"]
    assert main([*args, "--json", "--plots", str(plots)]) == 0
    report = json.loads(capsys.readouterr().out)
    for name in ("confusion.png", "reliability.png"):
        picture = (plots / name).read_bytes()
        assert picture.startswith(PNG_MAGIC) and len(picture) > 5_000, name
    bins = report["reliability"]
    assert sum(row["n"] for row in bins) == report["n"] == 30
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in bins)
    assert report["latency"]["decisions_per_s"] > 0

    assert main(args) == 0
    assert "decisions/s" in capsys.readouterr().out
