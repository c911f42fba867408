"""Load limits: a per-expert concurrency cap with a short bounded queue, and the failover retry budget."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from gateway.errors import APIError


def overloaded(expert: str, retry_after_s: int = 1) -> APIError:
    """The 429 for an expert with no free slot."""
    return APIError(
        429,
        f"The expert '{expert}' is at capacity; retry shortly.",
        code="expert_overloaded",
        headers={"Retry-After": str(retry_after_s)},
    )


class ExpertLimiter:
    """At most `capacity` requests in flight, `max_queue` more waiting up to `queue_timeout_s`."""

    def __init__(self, name: str, capacity: int, max_queue: int, queue_timeout_s: float) -> None:
        self.name = name
        self.capacity = capacity
        self._slots = anyio.Semaphore(capacity)
        self._max_queue = max_queue
        self._queue_timeout_s = queue_timeout_s
        self.waiting = 0

    @property
    def active(self) -> int:
        """Requests holding a slot now."""
        return self.capacity - self._slots.value

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body of the `async with`, or raise a 429."""
        if self._slots.value == 0:
            if self.waiting >= self._max_queue:
                raise overloaded(self.name)
            self.waiting += 1
            try:
                with anyio.move_on_after(self._queue_timeout_s) as scope:
                    await self._slots.acquire()
            finally:
                self.waiting -= 1
            if scope.cancelled_caught:
                raise overloaded(self.name)
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()


class RetryBudget:
    """Failovers allowed per window: a floor plus a share of the requests seen, so a dead fleet is not hammered."""

    def __init__(self, ratio: float, minimum: int, window_s: float = 10.0) -> None:
        self._ratio = ratio
        self._minimum = minimum
        self._window_s = window_s
        self._window_start = time.monotonic()
        self._requests = 0
        self._retries = 0

    def _roll(self) -> None:
        now = time.monotonic()
        if now - self._window_start >= self._window_s:
            self._window_start, self._requests, self._retries = now, 0, 0

    def request(self) -> None:
        """Count one incoming request."""
        self._roll()
        self._requests += 1

    def try_spend(self) -> bool:
        """Take one failover from the budget if any is left."""
        self._roll()
        if self._retries < self._minimum + self._ratio * self._requests:
            self._retries += 1
            return True
        return False
