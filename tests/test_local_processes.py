"""Engine child processes: own process group, log file, group-wide stop, death with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from coe_local.processes import ChildProcess
from tests.fixtures_engines import is_alive
from tests.observe import wait_until

# A child that starts a grandchild (as vLLM starts its engine core) and writes both pids.
FAMILY_SCRIPT = """
import signal, subprocess, sys, time
if sys.argv[2] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(f"{grandchild.pid}\\n")
print("family up", flush=True)
time.sleep(120)
"""


def start_family(tmp_path: Path, mode: str = "normal") -> tuple[ChildProcess, int]:
    pid_file = tmp_path / "grandchild.pid"
    child = ChildProcess(
        [sys.executable, "-c", FAMILY_SCRIPT, str(pid_file), mode],
        dict(os.environ),
        tmp_path / "logs" / "family.log",
    )
    child.start()
    assert wait_until(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"))
    return child, int(pid_file.read_text())


def test_child_leads_its_own_process_group_and_logs_to_its_file(tmp_path: Path) -> None:
    child, grandchild = start_family(tmp_path)
    try:
        assert child.pid is not None
        assert os.getpgid(child.pid) == child.pid != os.getpgid(0)
        assert os.getpgid(grandchild) == child.pid
        assert wait_until(lambda: "family up" in child.log_tail())
        assert child.returncode() is None
    finally:
        child.stop(grace_s=5)


def test_stop_ends_child_and_grandchild(tmp_path: Path) -> None:
    child, grandchild = start_family(tmp_path)
    child.stop(grace_s=5)
    assert child.returncode() == -signal.SIGTERM
    assert wait_until(lambda: not is_alive(grandchild))


def test_stop_kills_a_group_that_ignores_sigterm(tmp_path: Path) -> None:
    child, grandchild = start_family(tmp_path, mode="ignore-term")
    child.stop(grace_s=0.5)
    assert child.returncode() == -signal.SIGKILL
    assert wait_until(lambda: not is_alive(grandchild))


def test_engine_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "engine.pid"
    parent_script = (
        "import os, sys, time; from pathlib import Path; from coe_local.processes import ChildProcess\n"
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(120)']\n"
        "c = ChildProcess(sleeper, dict(os.environ), Path(sys.argv[1]) / 'e.log'); c.start()\n"
        "Path(sys.argv[1], 'engine.pid').write_text(str(c.pid) + '\\n'); time.sleep(120)\n"
    )
    repo_root = Path(__file__).resolve().parent.parent
    parent = subprocess.Popen([sys.executable, "-c", parent_script, str(tmp_path)], cwd=repo_root)
    try:
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"))
        engine = int(pid_file.read_text())
        assert is_alive(engine)
        parent.kill()  # SIGKILL: no cleanup code runs in the parent, only the kernel's death signal
        parent.wait()
        assert wait_until(lambda: not is_alive(engine))
    finally:
        parent.kill()
        parent.wait()
        if pid_file.exists() and is_alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_log_tail_returns_the_last_lines(tmp_path: Path) -> None:
    child = ChildProcess(
        [sys.executable, "-c", "for i in range(100): print(f'line {i}')"],
        dict(os.environ),
        tmp_path / "count.log",
    )
    child.start()
    assert wait_until(lambda: child.returncode() is not None)
    assert child.log_tail(3).splitlines() == ["line 97", "line 98", "line 99"]
    child.stop(grace_s=1)
