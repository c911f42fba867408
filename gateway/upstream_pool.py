"""The gateway's HTTP clients to the engines: several small connection pools, used in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

# httpcore 1.0's pool walks every connection it holds (and, for each idle one, all of them again) whenever a
# request starts or ends: quadratic in the connections in use. Profiled at 64 streams to one engine, those walks
# took about a third of the gateway's CPU. Eight pools, each with an eighth of the connection limit, keep every
# walk short; a request goes to the pool with the fewest in flight (the first on a tie), so light traffic keeps
# reusing one pool's connections and heavy traffic spreads evenly.
UPSTREAM_POOLS = 8


class UpstreamClients:
    """The pools; `lease()` picks one for a request, `main` serves the odd request (probes, `/version`)."""

    def __init__(self, clients: list[httpx.AsyncClient]) -> None:
        self.clients = clients
        self.in_flight = [0] * len(clients)

    @property
    def main(self) -> httpx.AsyncClient:
        return self.clients[0]

    def lease(self) -> int:
        """The index of the pool with the fewest requests in flight, now counted as one more; `release` it."""
        index = min(range(len(self.clients)), key=self.in_flight.__getitem__)
        self.in_flight[index] += 1
        return index

    def release(self, index: int) -> None:
        """A request of that pool has ended (its response closed, or it failed before one)."""
        self.in_flight[index] -= 1


@asynccontextmanager
async def upstream_clients(
    max_connections: int, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[UpstreamClients]:
    """Open the pools (one when a test injects its own transport), closed on exit."""
    count = 1 if transport is not None else max(1, min(UPSTREAM_POOLS, max_connections))
    share = -(-max_connections // count)
    limits = httpx.Limits(max_connections=share, max_keepalive_connections=share)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(transport=transport, limits=limits, timeout=None))
            for _ in range(count)
        ]
        yield UpstreamClients(clients)
