"""The load generator only ever talks to this machine: every URL is checked before a request leaves."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


class NotLoopbackError(ValueError):
    """A URL whose host is not a loopback address."""


def require_loopback(url: str) -> str:
    """Return `url` unchanged if its host is loopback (127.0.0.0/8, ::1, localhost); raise otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise NotLoopbackError(f"{url!r}: only http(s) URLs are benchmarked")
    host = parts.hostname or ""
    if host == "localhost":
        return url
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NotLoopbackError(f"{url!r}: benchmarks run against loopback addresses only")
    return url
