"""Per-minute request and token limits, in process and in a real Redis shared by two limiters."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from gateway.errors import APIError
from gateway.quota import MemoryCounters, Quota, RedisCounters, Scope
from gateway.roles import RoleBook
from tests.fixtures_security import RedisServer


def status_of(quota: Quota, scopes: list[Scope]) -> int:
    try:
        anyio.run(quota.admit, scopes)
    except APIError as error:
        return error.status
    return 200


def test_requests_and_tokens_in_process() -> None:
    quota = Quota(MemoryCounters(), clock=lambda: 600.0)
    key = [Scope("key", "ci", requests_per_minute=2, tokens_per_minute=100)]
    assert [status_of(quota, key) for _ in range(3)] == [200, 200, 429]
    other = [Scope("user", "bob", tokens_per_minute=100)]
    assert status_of(quota, other) == 200
    anyio.run(quota.spend_tokens, other, 100)
    assert status_of(quota, other) == 429
    quota._clock = lambda: 661.0  # the next minute: the previous one still weighs 59/60
    assert status_of(quota, key) == 429  # 3 * 59/60 + 1 requests > 2 (refused requests count too)
    assert status_of(quota, other) == 200  # 100 * 59/60 tokens < 100
    quota._clock = lambda: 780.0  # two minutes on: the burst has slid out of the window
    assert status_of(quota, key) == 200


def test_two_limiters_share_one_redis_and_degrade(redis_server: RedisServer) -> None:
    port, proc = redis_server.port, redis_server.process
    scopes = [Scope("role", "analyst", requests_per_minute=5), Scope("user", "alice@example.com", tokens_per_minute=50)]

    async def go() -> None:
        clients = [aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=1) for _ in range(2)]
        a, b = (Quota(RedisCounters(c), fail_open=fo) for c, fo in zip(clients, (True, False), strict=True))
        results = []
        for i in range(7):
            try:
                await (a if i % 2 else b).admit(scopes)
                results.append(200)
            except APIError as error:
                results.append(error.status)
        assert results == [200] * 5 + [429, 429]  # the pair holds one limit
        assert not any(b"alice" in k for k in await clients[0].keys("*"))  # subjects are hashed
        await a.spend_tokens(scopes[1:], 60)
        with pytest.raises(APIError) as caught:
            await b.admit(scopes[1:])
        assert caught.value.status == 429 and "tokens" in caught.value.message
        proc.terminate()
        proc.wait(10)
        await a.admit(scopes)  # fail open: admitted, counted
        with pytest.raises(APIError) as closed:
            await b.admit(scopes)
        assert closed.value.status == 503 and a.store_failures >= 1 and b.store_failures == 1
        await b.spend_tokens(scopes, 10)  # never raises after the answer
        for client in clients:
            await client.aclose()
    anyio.run(go)


def test_roles_file(tmp_path: Path) -> None:
    path = tmp_path / "roles.yaml"
    path.write_text("roles:\n  analyst: {experts: [general], tokens_per_minute: 1000, groups: [coe-analysts],"
                    " privacy: {policy: block}}\n  admin: {admin: true}\nkeys: {ci-bot: analyst}\n")
    book = RoleBook.load(path)
    name, role = book.for_key("ci-bot") or ("", None)
    assert name == "analyst" and role is not None and role.allowed == frozenset({"general"})
    assert role.privacy.policy == "block" and not role.privacy.store_text
    assert book.for_groups(("x", "coe-analysts"))[0] == "analyst"  # type: ignore[index]
    assert book.for_groups(("admin",))[1].admin  # type: ignore[index]
    assert book.for_groups(("nobody",)) is None and book.for_key("stranger") is None
    path.write_text("roles: {a: {}}\nkeys: {k: missing}\n")
    with pytest.raises(ValueError, match=r"roles\.yaml"):
        RoleBook.load(path)


class SlowDeadStore:
    """A store that answers nothing within its timeout, as a Redis behind a dropped route does."""

    def __init__(self) -> None:
        self.calls = 0

    async def incr(self, key: str, amount: int) -> int:
        self.calls += 1
        await anyio.sleep(0.2)
        raise TimeoutError("Timeout reading from socket")

    async def get(self, key: str) -> int:
        return await self.incr(key, 0)


def test_a_timing_out_store_is_left_alone_for_the_cooldown() -> None:
    store = SlowDeadStore()
    quota = Quota(store, fail_open=True, cooldown_s=30)
    scopes = [Scope("user", "u", requests_per_minute=5, tokens_per_minute=100)]

    async def go() -> float:
        await quota.admit(scopes)  # the first call times out: admitted, counted
        started = time.monotonic()
        for _ in range(10):
            await quota.admit(scopes)
        await quota.spend_tokens(scopes, 10)
        return time.monotonic() - started

    assert anyio.run(go) < 0.1 and store.calls == 1 and quota.store_failures == 1
    closed = Quota(SlowDeadStore(), fail_open=False, cooldown_s=30)
    assert status_of(closed, scopes) == 503 and status_of(closed, scopes) == 503
