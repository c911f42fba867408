"""The memory benchmark's readings: /proc figures of a live process, and the fast stage split off the cascade."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.modes.memory import fast_stage_alone, memory_mb
from router_model.artifact import default_artifact_dir


def test_resident_and_peak_come_from_proc() -> None:
    before = memory_mb(os.getpid())
    ballast = bytearray(64 * 1024 * 1024)  # touched, so it is resident
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])
    after = memory_mb(os.getpid())
    assert after["VmRSS"] - before["VmRSS"] > 50
    assert after["VmHWM"] >= after["VmRSS"] > 0
    del ballast


def test_the_fast_stage_is_copied_out_as_an_artifact_of_its_own(tmp_path: Path) -> None:
    shipped = default_artifact_dir()
    alone = fast_stage_alone(shipped, tmp_path)
    assert alone is not None and "cascade" not in json.loads((alone / "meta.json").read_text())
    assert json.loads((alone / "meta.json").read_text())["embedder"]["kind"] == "static"
    assert fast_stage_alone(alone, tmp_path / "again") is None  # no fast stage inside a fast stage
