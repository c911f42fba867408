"""The benchmark's picture: medians per path and concurrency, drawn into a PNG beside the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import cli
from bench.context import BenchContext
from bench.loadgen import LoadResult, RequestSample
from bench.plot import Curves, draw
from bench.report import Section
from bench.rounds import Comparison, Measurement


def _measurement(target: str, streams: int, ttft_s: float, e2e_s: float) -> Measurement:
    samples = [RequestSample(True, ttft_s, e2e_s, 4) for _ in range(3)]
    return Measurement(target, streams, 0, LoadResult(samples, 1.0), None)


def test_curves_hold_added_ttft_and_ratio_over_direct() -> None:
    comparison = Comparison([_measurement("direct", 1, 0.010, 0.100), _measurement("pinned", 1, 0.012, 0.105)])
    curves = Curves()
    curves.add("direct", comparison, "direct", [1])
    curves.add("pinned", comparison, "pinned", [1])
    curves.add("pinned", comparison, "direct", [1])  # a later mode does not overwrite a path already there
    assert curves.points["direct"] == {1: (0.0, 1.0)}
    added, ratio = curves.points["pinned"][1]
    assert added == pytest.approx(2.0) and ratio == pytest.approx(1.05)


def test_the_picture_is_a_png_and_the_report_shows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_runner(name: str):  # type: ignore[no-untyped-def]
        def run(ctx: BenchContext) -> Section:
            ctx.curves.points = {"direct": {1: (0.0, 1.0), 16: (0.0, 1.0)}, "pinned": {1: (0.8, 1.01), 16: (5.0, 1.04)}}
            return Section(f"{name} section")
        return run

    monkeypatch.setattr(cli, "mode_runner", fake_runner)
    out = tmp_path / "docs" / "report.md"
    assert cli.main(["--modes", "overhead", "--quick", "--out", str(out), "--work-dir", str(tmp_path)]) == 0
    picture = out.parent / cli.PICTURE
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({cli.PICTURE})" in out.read_text()


def test_nothing_measured_draws_nothing(tmp_path: Path) -> None:
    assert draw(Curves(), tmp_path / "x.png") is None and not (tmp_path / "x.png").exists()
