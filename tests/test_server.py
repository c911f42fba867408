"""Logging set-up of the server process."""

from __future__ import annotations

import logging

from gateway.server import configure_logging
from gateway.settings import Settings


def test_configuring_twice_adds_one_request_log_handler() -> None:
    request_log = logging.getLogger("coe.requests")
    before = list(request_log.handlers)
    try:
        configure_logging(Settings())
        configure_logging(Settings())
        assert sum(1 for h in request_log.handlers if getattr(h, "coe_request_log", False)) == 1
    finally:
        request_log.handlers = before
