"""An expert's replicas: the least-loaded pick (round robin on ties), in-flight counts, one breaker each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.registry import ExpertConfig, Replica

if TYPE_CHECKING:
    from gateway.health import ExpertHealth


@dataclass
class ReplicaState:
    """One replica at run time: its address, its breaker, and the requests it is answering now."""

    replica: Replica
    health: ExpertHealth
    inflight: int = 0

    @property
    def index(self) -> int:
        return self.replica.index

    @property
    def label(self) -> str:
        return self.replica.label


class ReplicaPool:
    """The replicas of one expert; the pick and the in-flight counts live on the event loop (no locks)."""

    def __init__(self, expert: ExpertConfig, breakers: list[ExpertHealth]) -> None:
        self.expert = expert
        self.states = [ReplicaState(r, b) for r, b in zip(expert.replicas, breakers, strict=True)]
        self._next = 0  # where the round robin among equally loaded replicas starts

    def is_up(self) -> bool:
        """Whether any replica's breaker lets requests through."""
        return any(s.health.is_up() for s in self.states)

    def pick(self, tried: set[int] | frozenset[int] = frozenset()) -> ReplicaState | None:
        """The untried replica with the fewest requests in flight, among those up; ties go round robin.

        When no untried replica is up and none was tried yet, any untried replica is returned: a request sent
        to an expert whose replicas are all down tries one rather than being refused blindly.
        """
        untried = [s for s in self.states if s.index not in tried]
        candidates = [s for s in untried if s.health.is_up()] or ([] if tried else untried)
        if not candidates:
            return None
        least = min(s.inflight for s in candidates)
        tied = [s for s in candidates if s.inflight == least]
        count = len(self.states)
        chosen = min(tied, key=lambda s: (s.index - self._next) % count)
        self._next = (chosen.index + 1) % count
        return chosen

    def has_other(self, tried: set[int]) -> bool:
        """Whether a replica not yet tried is up (somewhere to move a failed request to)."""
        return any(s.index not in tried and s.health.is_up() for s in self.states)

    def acquire(self, state: ReplicaState) -> None:
        """Count one request in flight on `state` (until `release`)."""
        state.inflight += 1

    def release(self, state: ReplicaState) -> None:
        """The request on `state` is over."""
        state.inflight -= 1

    def snapshot(self) -> list[dict[str, object]]:
        """Each replica for `/ready`: its label and breaker, never its URL."""
        return [
            {
                "replica": s.label,
                "index": s.index,
                "up": s.health.opened_at is None,
                "state": s.health.state,
                "inflight": s.inflight,
                "consecutive_failures": s.health.consecutive_failures,
                "last_error": s.health.last_error,
                "probed": s.health.probed,
                "times_opened": s.health.times_opened,
            }
            for s in self.states
        ]
