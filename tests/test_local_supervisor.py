"""Starting engines, waiting until they answer, reporting failures with their log, stopping them all."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from coe_local.engines import EnginePlan
from coe_local.processes import ChildProcess
from coe_local.stack import free_port
from coe_local.supervisor import Engine, EngineStartError, running_engines
from tests.fixtures_engines import fake_engine_command, is_alive
from tests.observe import wait_until


def make_engine(tmp_path: Path, command: list[str], port: int, names: list[str]) -> Engine:
    plan = EnginePlan(
        port=port, model="m", served_name=names[0], adapters={n: f"adapter-{n}" for n in names[1:]}
    )
    return Engine(plan, ChildProcess(command, dict(os.environ), tmp_path / f"engine-{port}.log"))


def make_fake(tmp_path: Path, names: list[str], delay_s: float = 0.0) -> Engine:
    port = free_port()
    return make_engine(tmp_path, fake_engine_command(port, names, delay_s), port, names)


def test_waits_for_every_engine_then_stops_them_all(tmp_path: Path) -> None:
    said: list[str] = []
    engines = [make_fake(tmp_path, ["general", "code"], delay_s=1.0), make_fake(tmp_path, ["other"])]
    with running_engines(engines, said.append, timeout_s=60) as supervisor:
        assert all(e.ready_after_s is not None for e in supervisor.engines)
        pids = [e.process.pid for e in engines]
        assert all(pid is not None and is_alive(pid) for pid in pids)
    assert all(wait_until(lambda pid=pid: not is_alive(pid)) for pid in pids if pid is not None)
    assert any("ready in" in line and "general, code" in line for line in said)
    assert said[-1] == "stopping engines"


def test_an_engine_missing_a_served_name_is_not_ready(tmp_path: Path) -> None:
    port = free_port()
    engine = make_engine(tmp_path, fake_engine_command(port, ["general"]), port, ["general", "code"])
    with (
        pytest.raises(EngineStartError, match="did not answer /v1/models within 3 s"),
        running_engines([engine], lambda _: None, timeout_s=3),
    ):
        pass
    assert engine.process.returncode() is not None


def test_a_crashing_engine_is_reported_with_its_log_tail_and_the_others_stopped(tmp_path: Path) -> None:
    crash = "import sys; print('loading weights'); print('RuntimeError: out of memory'); sys.exit(3)"
    healthy = make_fake(tmp_path, ["general"], delay_s=30.0)
    broken = make_engine(tmp_path, [sys.executable, "-c", crash], free_port(), ["code"])
    with (
        pytest.raises(EngineStartError) as caught,
        running_engines([healthy, broken], lambda _: None, timeout_s=60),
    ):
        pass
    message = str(caught.value)
    assert "exited with status 3 while loading" in message
    assert "RuntimeError: out of memory" in message
    assert str(broken.process.log_file) in message
    assert healthy.process.pid is not None
    assert wait_until(lambda: not is_alive(healthy.process.pid))  # type: ignore[arg-type]


def test_engines_that_do_not_fit_in_memory_wait_for_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("coe_local.supervisor.available_memory_gib", lambda: 4.0)
    said: list[str] = []
    first, second = make_fake(tmp_path, ["a"], delay_s=1.0), make_fake(tmp_path, ["b"])
    with running_engines([first, second], said.append, timeout_s=60):
        assert first.ready_after_s is not None and second.started_at is not None
    starts = [line for line in said if "starting" in line or "ready in" in line]
    assert [line.split(":")[1].split()[0] for line in starts[:2]] == [str(first.plan.port)] * 2
