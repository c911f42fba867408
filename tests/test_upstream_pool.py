"""The gateway's connection pools to the engines: the limit split across them, requests handed out in turn."""

from __future__ import annotations

import anyio
import httpx

from gateway.upstream_pool import UPSTREAM_POOLS, upstream_clients


def limits_of(client: httpx.AsyncClient) -> tuple[int, int]:
    pool = client._transport._pool  # type: ignore[attr-defined]
    return pool._max_connections, pool._max_keepalive_connections


def test_the_connection_limit_is_shared_by_the_pools_and_the_least_busy_takes_a_request() -> None:
    async def check() -> None:
        async with upstream_clients(512) as upstream:
            assert len(upstream.clients) == UPSTREAM_POOLS and upstream.main is upstream.clients[0]
            assert {limits_of(c) for c in upstream.clients} == {(512 // UPSTREAM_POOLS, 512 // UPSTREAM_POOLS)}
            one_at_a_time = []
            for _ in range(3):  # light traffic: always the first pool, so its connections are reused
                one_at_a_time.append(upstream.lease())
                upstream.release(one_at_a_time[-1])
            assert one_at_a_time == [0, 0, 0]
            at_once = [upstream.lease() for _ in range(2 * UPSTREAM_POOLS)]  # heavy: spread evenly
            assert sorted(at_once) == sorted(list(range(UPSTREAM_POOLS)) * 2)
            upstream.release(5)
            assert upstream.lease() == 5
        assert all(c.is_closed for c in upstream.clients)
        async with upstream_clients(3) as few:  # never more pools than connections
            assert len(few.clients) == 3 and {limits_of(c) for c in few.clients} == {(1, 1)}

    anyio.run(check)


def test_an_injected_transport_gets_one_pool() -> None:
    async def check() -> None:
        transport = httpx.MockTransport(lambda request: httpx.Response(200))
        async with upstream_clients(512, transport) as upstream:
            assert len(upstream.clients) == 1 and upstream.lease() == 0

    anyio.run(check)
