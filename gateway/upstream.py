"""Talking to one expert's engine: send the request, wait for the first bytes, classify what went wrong."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx

from gateway.engine_client import EngineClient
from gateway.errors import APIError, upstream_error
from gateway.registry import ExpertConfig
from gateway.settings import Settings


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each phase of one upstream request."""

    connect: float
    first_byte: float
    idle: float
    total: float

    @classmethod
    def for_expert(cls, settings: Settings, expert: ExpertConfig) -> Timeouts:
        """Gateway-wide timeouts with the expert's own overrides."""
        t = expert.timeouts
        return cls(
            connect=t.connect or settings.connect_timeout_s,
            first_byte=t.first_byte or settings.first_byte_timeout_s,
            idle=t.idle or settings.stream_idle_timeout_s,
            total=t.total or settings.total_timeout_s,
        )


class UpstreamFailure(Exception):
    """The engine could not give an answer; `retryable` failures may go to another expert."""

    def __init__(self, kind: str, error: APIError, retryable: bool) -> None:
        super().__init__(error.message)
        self.kind = kind
        self.error = error
        self.retryable = retryable


def unreachable(expert: str, kind: str, detail: str) -> UpstreamFailure:
    """A connect error or timeout before any answer: 502/503/504 with Retry-After."""
    status = {"connect": 503, "timeout": 504}.get(kind, 502)
    error = APIError(
        status,
        f"The expert '{expert}' could not answer ({detail}).",
        code="expert_unavailable",
        headers={"Retry-After": "2"},
    )
    return UpstreamFailure(kind, error, retryable=True)


class StreamStalled(Exception):
    """An engine sent nothing within the idle timeout and no other engine could take the answer over."""


@dataclass
class Opened:
    """An engine response whose status was 2xx, with the bytes read so far."""

    response: httpx.Response
    chunks: AsyncIterator[bytes]
    head: bytes


async def open_upstream(
    client: EngineClient,
    expert: ExpertConfig,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeouts: Timeouts,
) -> Opened:
    """Send the request and read its first bytes, all within the time-to-first-byte limit."""
    response: httpx.Response | None = None
    opened = False
    try:
        async with asyncio.timeout(timeouts.first_byte):  # asyncio's own: an anyio scope costs twice the CPU
            response = await client.post(url, body, headers, timeouts.connect)
            if response.status_code >= 400:
                raw = await response.aread()
                await response.aclose()
                error = upstream_error(response.status_code, raw, response.headers.get("content-type", ""))
                retryable = response.status_code >= 500 or response.status_code == 429
                if retryable:
                    error.headers.setdefault("Retry-After", response.headers.get("retry-after", "2"))
                    if response.status_code >= 500:
                        error.status = 502  # the engine failed, not the gateway
                if retryable:
                    kind = "http_429" if response.status_code == 429 else "http_5xx"
                else:
                    kind = "rejected"  # the engine judged the request itself invalid: passed on unchanged
                raise UpstreamFailure(kind, error, retryable=retryable)
            chunks = response.aiter_raw()
            head = b""
            async for chunk in chunks:
                if chunk:
                    head = chunk
                    break
            opened = True
            return Opened(response, chunks, head)
    except UpstreamFailure:
        raise
    except TimeoutError as exc:
        raise unreachable(expert.name, "timeout", "no answer in time") from exc
    except httpx.ConnectError as exc:
        raise unreachable(expert.name, "connect", "connection refused or unreachable") from exc
    except httpx.TimeoutException as exc:
        raise unreachable(expert.name, "connect", "connect timed out") from exc
    except httpx.HTTPError as exc:
        raise unreachable(expert.name, "protocol", type(exc).__name__) from exc
    finally:
        if response is not None and not opened:
            with anyio.CancelScope(shield=True):  # also when the client left: free the connection
                await response.aclose()
