"""Unit tests for generated code, run in a separate Python process under time and memory limits."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    """Per-program limits: CPU seconds, wall seconds, address space and written file size (bytes)."""

    cpu_s: int = 10
    wall_s: float = 20.0
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20


@dataclass(frozen=True)
class TestRun:
    """What happened: passed, and why not (exit code, timeout, memory)."""

    passed: bool
    reason: str


def _limit(limits: Limits) -> None:
    """Runs in the child before exec: the kernel enforces the limits, not the candidate's good will."""
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def program(setup: str, code: str, tests: tuple[str, ...]) -> str:
    """Setup (imports, helpers), the candidate's code, then every test."""
    return "\n\n".join([setup, code, *tests, ""])


async def run_tests(setup: str, code: str, tests: tuple[str, ...], limits: Limits | None = None) -> TestRun:
    """Run the program in a fresh, isolated interpreter in a scratch folder; pass means exit status 0."""
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="coe-tests-") as scratch:
        path = Path(scratch) / "candidate.py"
        path.write_text(program(setup, code, tests), encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            str(path),
            cwd=scratch,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0"},
            preexec_fn=lambda: _limit(limits),
            start_new_session=True,
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=limits.wall_s)
        except TimeoutError:
            # The candidate may have forked: end its whole session, not just the first process.
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            return TestRun(False, f"timeout after {limits.wall_s:.0f} s")
    if process.returncode == 0:
        return TestRun(True, "passed")
    tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    if process.returncode == -signal.SIGXCPU or process.returncode == -signal.SIGKILL:
        return TestRun(False, f"killed by signal {-process.returncode} (CPU limit)")
    if "MemoryError" in tail[0]:
        return TestRun(False, "memory limit")
    return TestRun(False, f"exit {process.returncode}: {tail[0][:200]}")
