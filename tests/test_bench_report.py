"""The benchmark report: tables, target verdicts, profiles, and the command that writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import cli
from bench.profiling import hot_frames
from bench.report import Section, Table, TargetCheck, render_report


def test_a_table_is_a_pipe_table_with_escaped_cells() -> None:
    text = Table(["a", "b"], [["1", "x|y"]]).markdown()
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | x\\|y |"]


def test_the_report_lists_every_target_with_its_verdict() -> None:
    sections = [
        Section("One", "intro", [Table(["k"], [["v"]])], ["a note"],
                [TargetCheck("fast", "≤ 1 ms", "0.5 ms", True), TargetCheck("cheap", "≤ 2", "3", False)]),
        Section("Two", checks=[TargetCheck("peer", "≥ 3×", "n/a", None)]),
    ]
    text = render_report("Benchmarks", "preamble", [("CPU", "test cpu")], sections)
    assert "| CPU | test cpu |" in text
    assert "| fast | ≤ 1 ms | 0.5 ms | met |" in text
    assert "| cheap | ≤ 2 | 3 | **missed** |" in text
    assert "| peer | ≥ 3× | n/a | not measured |" in text
    assert text.index("## One") < text.index("## Two") and "- a note" in text


def test_hot_frames_rank_self_time_and_the_gateways_own_frames(tmp_path: Path) -> None:
    collapsed = tmp_path / "stacks.txt"
    collapsed.write_text(
        "main (gateway/cli.py:5);run (asyncio/runners.py:118);_pump (gateway/relay.py:10);send (h11/x.py:3) 6\n"
        "main (gateway/cli.py:5);run (asyncio/runners.py:118);_pump (gateway/relay.py:12) 2\n"
        "main (gateway/cli.py:5);run (asyncio/runners.py:118) 2\n"
    )
    table, total = hot_frames(collapsed)
    assert total == 10
    rows = {(row[0], row[1]): row[2] for row in table.rows}
    assert rows[("`send (h11/x.py)`", "self")] == "60.0%"
    assert rows[("`_pump (gateway/relay.py)`", "inclusive")] == "80.0%"
    assert not any("gateway/cli.py" in frame and kind == "inclusive" for frame, kind in rows)


def test_an_unknown_mode_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        cli.main(["--modes", "nope", "--out", str(tmp_path / "r.md"), "--work-dir", str(tmp_path)])


def test_the_command_writes_the_report_and_keeps_a_failed_modes_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_runner(name: str):
        def run(ctx: object) -> Section:
            if name == "capacity":
                raise RuntimeError("engine would not start")
            return Section(f"{name} section", checks=[TargetCheck(name, "goal", "1", True)])
        return run

    monkeypatch.setattr(cli, "mode_runner", fake_runner)
    out = tmp_path / "report.md"
    code = cli.main(["--modes", "overhead,capacity", "--quick", "--out", str(out), "--work-dir", str(tmp_path)])
    text = out.read_text()
    assert code == 1
    assert "## overhead section" in text and "## capacity: not measured" in text
    assert "engine would not start" in text and "--quick" in text


def test_the_report_names_no_path_of_this_machine() -> None:
    text = cli.without_machine_paths(f"log {cli.ROOT}/bench/results/x.log and {Path.home()}/.cache/coe/models")
    assert text == "log ./bench/results/x.log and ~/.cache/coe/models"
