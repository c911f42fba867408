"""Health: a circuit breaker per replica, fed by request failures and by an active probe of `/models`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import httpx

from gateway.registry import ExpertConfig
from gateway.replicas import ReplicaPool, ReplicaState

log = logging.getLogger(__name__)


@dataclass
class ExpertHealth:
    """One replica's breaker: closed (up), open (down until the cool-down ends), half-open (one trial)."""

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
    """All experts' replica pools with one breaker per replica, and the probe loop that keeps them fresh.

    An expert is up while any of its replicas is; `on_change` hears of the expert, `on_replica` of each replica,
    `on_models` of each probe's `/models` answer.
    """

    def __init__(
        self,
        experts: list[ExpertConfig],
        failures_to_open: int,
        cooldown_s: float,
        on_change: Callable[[str, bool], None] | None = None,
        on_replica: Callable[[str, str, bool], None] | None = None,
        on_models: Callable[[ExpertConfig, bytes], None] | None = None,
    ) -> None:
        self._failures_to_open, self._cooldown_s = failures_to_open, cooldown_s
        self._on_change = on_change or (lambda name, up: None)
        self._on_replica = on_replica or (lambda name, replica, up: None)
        self._on_models = on_models or (lambda expert, body: None)
        self.pools: dict[str, ReplicaPool] = {}
        for expert in experts:
            self.pools[expert.name] = self._new_pool(expert)

    def _new_pool(self, expert: ExpertConfig) -> ReplicaPool:
        pool = ReplicaPool(expert, [ExpertHealth(self._failures_to_open, self._cooldown_s) for _ in expert.replicas])
        self._on_change(expert.name, True)
        for state in pool.states:
            self._on_replica(expert.name, state.label, True)
        return pool

    def update(self, experts: list[ExpertConfig]) -> None:
        """Follow a reloaded registry: new experts start closed, removed ones go, the rest keep their breakers
        (unless the expert now points at other engines, whose health says nothing about the old ones')."""
        pools: dict[str, ReplicaPool] = {}
        for expert in experts:
            kept = self.pools.get(expert.name)
            same = kept is not None and [r.url for r in kept.expert.replicas] == [r.url for r in expert.replicas]
            if kept is not None and same:
                kept.expert = expert
                pools[expert.name] = kept
            else:
                pools[expert.name] = self._new_pool(expert)
        self.pools = pools

    def pool(self, name: str) -> ReplicaPool:
        """The replicas of expert `name`."""
        return self.pools[name]

    def is_up(self, name: str) -> bool:
        """Whether routing may use this expert now (any replica up; one reloaded away is left to its requests)."""
        pool = self.pools.get(name)
        return pool is None or pool.is_up()

    def _closed(self, name: str) -> bool:
        return any(s.health.opened_at is None for s in self.pools[name].states)

    def _state(self, name: str, replica: int) -> ReplicaState | None:
        """A replica's state, or None when a reload took its expert away while a request or probe ran."""
        pool = self.pools.get(name)
        return pool.states[replica] if pool is not None and replica < len(pool.states) else None

    def success(self, name: str, replica: int = 0) -> None:
        """A request or probe to this replica worked."""
        if (state := self._state(name, replica)) is None:
            return
        expert_was_up, was_up = self._closed(name), state.health.opened_at is None
        state.health.record_success()
        if not was_up:
            log.info("expert %s replica %s is up again", name, state.label)
            self._on_replica(name, state.label, True)
        if not expert_was_up:
            self._on_change(name, True)

    def failure(self, name: str, reason: str, replica: int = 0) -> None:
        """A request or probe to this replica failed."""
        if (state := self._state(name, replica)) is None:
            return
        was_open = state.health.opened_at is not None
        state.health.record_failure(reason)
        if state.health.opened_at is not None and not was_open:
            log.warning("expert %s replica %s marked down: %s", name, state.label, reason)
            self._on_replica(name, state.label, False)
            if not self._closed(name):
                self._on_change(name, False)

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Per-expert state for `/ready`: the best of its replicas, and each replica."""
        out: dict[str, dict[str, object]] = {}
        for name, pool in self.pools.items():
            breakers = [s.health for s in pool.states]
            states = {h.state for h in breakers}
            out[name] = {
                "up": self._closed(name),
                "state": next(s for s in ("closed", "half_open", "open") if s in states),
                "consecutive_failures": min(h.consecutive_failures for h in breakers),
                "last_error": next((h.last_error for h in breakers if h.last_error), None),
                "probed": all(h.probed for h in breakers),
                "times_opened": sum(h.times_opened for h in breakers),
                "replicas": pool.snapshot(),
            }
        return out

    async def probe_once(self, client: httpx.AsyncClient, timeout_s: float) -> None:
        """Ask every replica's `/models` once, concurrently."""

        async def probe(name: str, state: ReplicaState) -> None:
            try:
                with anyio.fail_after(timeout_s):
                    response = await client.get(f"{state.replica.url}/models")
                ok = response.status_code == 200
                reason = f"probe answered HTTP {response.status_code}"
            except (httpx.HTTPError, TimeoutError) as exc:
                ok, reason = False, f"probe failed: {type(exc).__name__}"
            state.health.probed = True
            if ok:
                if (pool := self.pools.get(name)) is not None:
                    self._on_models(pool.expert, response.content)  # what the engine says of its model
                self.success(name, state.index)
            else:
                self.failure(name, reason, state.index)

        async with anyio.create_task_group() as tg:
            for name, pool in self.pools.items():
                for state in pool.states:
                    tg.start_soon(probe, name, state)

    async def probe_forever(self, client: httpx.AsyncClient, interval_s: float, timeout_s: float) -> None:
        """The background probe loop (cancelled at shutdown)."""
        while True:
            await self.probe_once(client, timeout_s)
            await anyio.sleep(interval_s)
