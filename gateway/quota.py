"""Requests and tokens per minute per key, user and role: in Redis across replicas, or in this process."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import APIError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scope:
    """One thing limited: `kind` (key, user, role), its name, and its per-minute limits."""

    kind: str
    name: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def key(self, what: str, minute: int) -> str:
        # Subjects may be e-mail addresses: only a hash of the name goes into Redis.
        digest = hashlib.sha256(self.name.encode()).hexdigest()[:16]
        return f"coe:{what}:{self.kind}:{digest}:{minute}"


def limited(scope: Scope, what: str, retry_after: int) -> APIError:
    return APIError(429, f"Rate limit reached: {what} per minute for this {scope.kind}.", code="rate_limit_exceeded",
                    headers={"Retry-After": str(max(1, retry_after))})


class Counters(Protocol):
    async def incr(self, key: str, amount: int) -> int: ...
    async def get(self, key: str) -> int: ...


class MemoryCounters:
    """Counters in this process, dropped once they are older than the previous minute."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}

    async def incr(self, key: str, amount: int) -> int:
        minute = int(key.rsplit(":", 1)[1])
        for old in [k for k in self._values if int(k.rsplit(":", 1)[1]) < minute - 1]:
            del self._values[old]
        self._values[key] = self._values.get(key, 0) + amount
        return self._values[key]

    async def get(self, key: str) -> int:
        return self._values.get(key, 0)


class RedisCounters:
    """Counters shared by every replica: INCRBY plus an expiry a little past the window."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def incr(self, key: str, amount: int) -> int:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incrby(key, amount)
            pipe.expire(key, 120)
            value, _ = await pipe.execute()
        return int(value)

    async def get(self, key: str) -> int:
        value = await self._client.get(key)
        return int(value or 0)


class Quota:
    """Sliding one-minute windows; a broken store fails open or closed as configured, never a 500.

    The count over the last minute is estimated as this minute's count plus the previous minute's, weighted by
    the share of the previous minute still inside the window: a burst across a minute boundary is not let
    through twice, as it would be with fixed windows.
    """

    def __init__(self, counters: Counters, fail_open: bool = True, clock: Any = time.time,
                 on_store_failure: Callable[[], None] | None = None, cooldown_s: float = 2.0) -> None:
        self._counters = counters
        self._fail_open = fail_open
        self._clock = clock
        self._on_store_failure = on_store_failure
        self._cooldown_s = cooldown_s
        self._down_until = float("-inf")
        self.store_failures = 0

    def _window(self) -> tuple[int, float, int]:
        """This minute, the weight of the previous one, and the seconds until this one ends."""
        now = self._clock()
        minute, into = int(now // 60), now % 60
        return minute, 1.0 - into / 60, max(1, 60 - int(into))

    def _degraded(self, cause: BaseException | None) -> None:
        if not self._fail_open:
            raise APIError(503, "Rate limits cannot be checked right now.", code="limits_unavailable",
                           headers={"Retry-After": "5"}) from cause

    async def _guarded(self, call: Any) -> Any:
        # After a failure the store is left alone for `cooldown_s`: a Redis that times out rather than refuses
        # would otherwise add its timeout to every call of every request.
        if time.monotonic() < self._down_until:
            call.close()
            self._degraded(None)
            return None
        try:
            return await call
        except Exception as exc:  # any store failure: connection refused, timeout, protocol error
            self.store_failures += 1
            self._down_until = time.monotonic() + self._cooldown_s
            if self._on_store_failure is not None:
                self._on_store_failure()
            log.warning("rate-limit store failed (%s); failing %s for %.0f s", type(exc).__name__,
                        "open" if self._fail_open else "closed", self._cooldown_s)
            self._degraded(exc)
            return None

    async def _estimate(self, scope: Scope, what: str, minute: int, weight: float, current: int | None) -> float | None:
        previous = await self._guarded(self._counters.get(scope.key(what, minute - 1)))
        if previous is None:
            return None
        if current is None:
            current = await self._guarded(self._counters.get(scope.key(what, minute)))
            if current is None:
                return None
        return float(current) + previous * weight

    async def admit(self, scopes: list[Scope]) -> None:
        """Count one request against every scope, or raise a 429 if a request or token limit is spent."""
        minute, weight, retry = self._window()
        for scope in scopes:
            if scope.tokens_per_minute:
                spent = await self._estimate(scope, "tok", minute, weight, None)
                if spent is not None and spent >= scope.tokens_per_minute:
                    raise limited(scope, "tokens", retry)
            if scope.requests_per_minute:
                count = await self._guarded(self._counters.incr(scope.key("req", minute), 1))
                if count is None:
                    continue
                estimate = await self._estimate(scope, "req", minute, weight, count)
                if estimate is not None and estimate > scope.requests_per_minute:
                    raise limited(scope, "requests", retry)

    async def spend_tokens(self, scopes: list[Scope], tokens: int) -> None:
        """Count real usage (prompt + completion) after the answer; the next request sees it."""
        if tokens <= 0:
            return
        minute, _, _ = self._window()
        for scope in scopes:
            if scope.tokens_per_minute:
                try:
                    await self._guarded(self._counters.incr(scope.key("tok", minute), tokens))
                except APIError:
                    pass  # the answer is already out: failing closed here only loses the count, already logged
