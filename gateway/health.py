"""Per-expert health: a circuit breaker fed by request failures and by an active probe of `/models`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import httpx

from gateway.registry import ExpertConfig

log = logging.getLogger(__name__)


@dataclass
class ExpertHealth:
    """One expert's breaker: closed (up), open (down until the cool-down ends), half-open (one trial)."""

    failures_to_open: int
    cooldown_s: float
    consecutive_failures: int = 0
    opened_at: float | None = None
    last_error: str | None = None
    probed: bool = False
    times_opened: int = 0

    def is_up(self, now: float | None = None) -> bool:
        """Whether requests may be sent (half-open after the cool-down lets a trial through)."""
        if self.opened_at is None:
            return True
        return (now if now is not None else time.monotonic()) - self.opened_at >= self.cooldown_s

    @property
    def state(self) -> str:
        """closed, open or half_open."""
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.is_up() else "open"

    def record_success(self) -> None:
        """Close the breaker."""
        self.consecutive_failures = 0
        self.opened_at = None
        self.last_error = None

    def record_failure(self, reason: str) -> None:
        """Count a failure; open (or re-open) the breaker past the threshold."""
        self.consecutive_failures += 1
        self.last_error = reason
        if self.consecutive_failures >= self.failures_to_open or self.opened_at is not None:
            if self.opened_at is None:
                self.times_opened += 1
            self.opened_at = time.monotonic()


class HealthBoard:
    """All experts' breakers, and the probe loop that keeps them fresh."""

    def __init__(
        self,
        experts: list[ExpertConfig],
        failures_to_open: int,
        cooldown_s: float,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._failures_to_open, self._cooldown_s = failures_to_open, cooldown_s
        self._experts = {e.name: e for e in experts}
        self._health = {e.name: ExpertHealth(failures_to_open, cooldown_s) for e in experts}
        self._on_change = on_change or (lambda name, up: None)
        for name in self._health:
            self._on_change(name, True)

    def update(self, experts: list[ExpertConfig]) -> None:
        """Follow a reloaded registry: new experts start closed, removed ones go, the rest keep their breakers
        (unless the expert now points at another engine, whose health says nothing about the old one's)."""
        health: dict[str, ExpertHealth] = {}
        for expert in experts:
            kept = self._health.get(expert.name)
            if kept is None or self._experts[expert.name].url != expert.url:
                kept = ExpertHealth(self._failures_to_open, self._cooldown_s)
                self._on_change(expert.name, True)
            health[expert.name] = kept
        self._experts, self._health = {e.name: e for e in experts}, health

    def breaker(self, name: str) -> ExpertHealth | None:
        """This expert's breaker, if it is in the running registry."""
        return self._health.get(name)

    def is_up(self, name: str) -> bool:
        """Whether routing may use this expert now (one reloaded away is left to its in-flight requests)."""
        health = self._health.get(name)
        return health is None or health.is_up()

    def success(self, name: str) -> None:
        """A request or probe to this expert worked."""
        health = self._health.get(name)
        if health is None:
            return  # reloaded away while the request ran
        was_up = health.opened_at is None
        health.record_success()
        if not was_up:
            log.info("expert %s is up again", name)
            self._on_change(name, True)

    def failure(self, name: str, reason: str) -> None:
        """A request or probe to this expert failed."""
        health = self._health.get(name)
        if health is None:
            return
        was_open = health.opened_at is not None
        health.record_failure(reason)
        if health.opened_at is not None and not was_open:
            log.warning("expert %s marked down: %s", name, reason)
            self._on_change(name, False)

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Per-expert state for `/ready`."""
        return {
            name: {
                "up": h.opened_at is None,
                "state": h.state,
                "consecutive_failures": h.consecutive_failures,
                "last_error": h.last_error,
                "probed": h.probed,
                "times_opened": h.times_opened,
            }
            for name, h in self._health.items()
        }

    async def probe_once(self, client: httpx.AsyncClient, timeout_s: float) -> None:
        """Ask every expert's `/models` once, concurrently."""

        async def probe(expert: ExpertConfig) -> None:
            try:
                with anyio.fail_after(timeout_s):
                    response = await client.get(f"{expert.url}/models")
                ok = response.status_code == 200
                reason = f"probe answered HTTP {response.status_code}"
            except (httpx.HTTPError, TimeoutError) as exc:
                ok, reason = False, f"probe failed: {type(exc).__name__}"
            if (health := self._health.get(expert.name)) is None:
                return  # reloaded away during the probe
            health.probed = True
            if ok:
                self.success(expert.name)
            else:
                self.failure(expert.name, reason)

        async with anyio.create_task_group() as tg:
            for expert in self._experts.values():
                tg.start_soon(probe, expert)

    async def probe_forever(self, client: httpx.AsyncClient, interval_s: float, timeout_s: float) -> None:
        """The background probe loop (cancelled at shutdown)."""
        while True:
            await self.probe_once(client, timeout_s)
            await anyio.sleep(interval_s)
