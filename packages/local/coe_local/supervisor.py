"""Start the engines of a profile, show progress while they load, wait until they answer, stop them all."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from coe_local.engines import EnginePlan, engine_command, engine_env, log_path
from coe_local.models import Say
from coe_local.prepare import PreparedModels
from coe_local.processes import ChildProcess

DEFAULT_START_TIMEOUT_S = 900.0
PROGRESS_EVERY_S = 15.0


class EngineStartError(RuntimeError):
    """An engine that exited or never answered; the message carries the tail of its log."""


@dataclass
class Engine:
    """A planned engine and, once launched, its process."""

    plan: EnginePlan
    process: ChildProcess
    started_at: float | None = None
    ready_after_s: float | None = None

    @property
    def label(self) -> str:
        """How progress lines name the engine."""
        return f"engine :{self.plan.port} ({', '.join(self.plan.served_names)})"


def available_memory_gib() -> float | None:
    """MemAvailable from /proc/meminfo, or None where there is no such file."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        return None
    return None


def answers_models(plan: EnginePlan, client: httpx.Client) -> bool:
    """Whether the engine lists every name it should serve on `/v1/models`."""
    try:
        response = client.get(f"{plan.base_url}/models")
        served = (
            {item.get("id") for item in response.json().get("data", [])}
            if response.status_code == 200
            else set()
        )
    except (httpx.HTTPError, ValueError):
        return False
    return set(plan.served_names) <= served


def _last_log_line(engine: Engine) -> str:
    lines = [line for line in engine.process.log_tail(5).splitlines() if line.strip()]
    return lines[-1].strip()[:120] if lines else "(no output yet)"


def _failure(engine: Engine, reason: str) -> EngineStartError:
    tail = engine.process.log_tail(40).rstrip() or "(empty)"
    return EngineStartError(f"{engine.label} {reason}; log {engine.process.log_file}, last lines:\n{tail}")


def vllm_engines(plans: list[EnginePlan], prepared: PreparedModels, log_dir: Path) -> list[Engine]:
    """One vLLM engine per plan, not started yet."""
    return [
        Engine(plan, ChildProcess(engine_command(plan, prepared), engine_env(plan), log_path(log_dir, plan)))
        for plan in plans
    ]


class EngineSupervisor:
    """Owns the engine processes of one run: launches within the memory budget, polls, stops."""

    def __init__(self, engines: list[Engine], say: Say) -> None:
        self.engines = engines
        self.say = say

    def _launch_what_fits(self) -> None:
        """Start waiting engines while the free memory covers their estimate (always at least one loading)."""
        loading = [e for e in self.engines if e.started_at is not None and e.ready_after_s is None]
        free = available_memory_gib()
        for engine in (e for e in self.engines if e.started_at is None):
            need = engine.plan.memory_estimate_gib()
            reserved = sum(e.plan.memory_estimate_gib() for e in loading)
            if loading and free is not None and need + reserved > free:
                return
            engine.process.start()
            engine.started_at = time.monotonic()
            loading.append(engine)
            self.say(f"{engine.label}: starting, log {engine.process.log_file}")

    def wait_ready(self, timeout_s: float = DEFAULT_START_TIMEOUT_S, poll_s: float = 1.0) -> None:
        """Launch and poll until every engine answers; raise EngineStartError naming the first that fails."""
        deadline = time.monotonic() + timeout_s
        next_progress = time.monotonic() + PROGRESS_EVERY_S
        with httpx.Client(timeout=2.0) as client:
            while True:
                self._launch_what_fits()
                for engine in self.engines:
                    self._check(engine, client)
                if all(e.ready_after_s is not None for e in self.engines):
                    return
                now = time.monotonic()
                if now > deadline:
                    slow = next(e for e in self.engines if e.ready_after_s is None)
                    raise _failure(slow, f"did not answer /v1/models within {timeout_s:.0f} s")
                if now >= next_progress:
                    next_progress = now + PROGRESS_EVERY_S
                    self._report_loading(now)
                time.sleep(poll_s)

    def _check(self, engine: Engine, client: httpx.Client) -> None:
        if engine.started_at is None or engine.ready_after_s is not None:
            return
        code = engine.process.returncode()
        if code is not None:
            raise _failure(engine, f"exited with status {code} while loading")
        if answers_models(engine.plan, client):
            engine.ready_after_s = time.monotonic() - engine.started_at
            self.say(f"{engine.label}: ready in {engine.ready_after_s:.0f} s at {engine.plan.base_url}")

    def _report_loading(self, now: float) -> None:
        for engine in self.engines:
            if engine.started_at is None:
                self.say(f"{engine.label}: waiting for memory")
            elif engine.ready_after_s is None:
                self.say(
                    f"{engine.label}: loading, {now - engine.started_at:.0f} s | {_last_log_line(engine)}"
                )

    def failed_engines(self) -> list[Engine]:
        """Engines that were started and have exited since."""
        return [e for e in self.engines if e.started_at is not None and e.process.returncode() is not None]

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop every engine started, in reverse order."""
        for engine in reversed(self.engines):
            if engine.started_at is not None:
                engine.process.stop(grace_s)


@contextmanager
def running_engines(
    engines: list[Engine], say: Say, timeout_s: float = DEFAULT_START_TIMEOUT_S
) -> Iterator[EngineSupervisor]:
    """Engines started and answering inside the block, all stopped after it (also on errors and Ctrl-C)."""
    supervisor = EngineSupervisor(engines, say)
    try:
        supervisor.wait_ready(timeout_s)
        yield supervisor
    finally:
        if any(e.started_at is not None for e in supervisor.engines):
            say("stopping engines")
        supervisor.stop()
