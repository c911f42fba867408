"""The request log: one JSON line per request, serialised and written by a thread, never on the event loop."""

from __future__ import annotations

import atexit
import json
import logging
import queue
import sys
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

REQUEST_LOG = "coe.requests"


class LogLine:
    """A request's fields, turned into JSON only when a handler formats the record."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return json.dumps(self.fields, separators=(",", ":"))


class _HandOver(QueueHandler):
    """Puts the record on the queue as it is: the listener's thread formats it (the stock handler formats here)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def install(level: int, stream: TextIO | None = None) -> None:
    """Route the request log through a queue to a writer thread; once per process, however often called."""
    logger = logging.getLogger(REQUEST_LOG)
    logger.propagate = False
    logger.setLevel(level)
    if any(getattr(h, "coe_request_log", False) for h in logger.handlers):
        return
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.setFormatter(logging.Formatter("%(message)s"))
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = QueueListener(lines, writer)
    handler = _HandOver(lines)
    handler.coe_request_log = True  # type: ignore[attr-defined]
    handler.listener = listener  # type: ignore[attr-defined]
    listener.start()
    atexit.register(listener.stop)  # writes what is still queued before the process ends
    logger.addHandler(handler)
