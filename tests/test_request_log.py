"""The request log is serialised and written by its own thread, not on the event loop."""

from __future__ import annotations

import io
import json
import logging
import threading
from typing import ClassVar

from gateway.request_log import REQUEST_LOG, LogLine, install
from tests.observe import wait_until


class _Recorded(LogLine):
    """A log line that notes which thread turned it into text."""

    threads: ClassVar[list[str]] = []

    def __str__(self) -> str:
        self.threads.append(threading.current_thread().name)
        return super().__str__()


def test_lines_are_serialised_and_written_by_another_thread() -> None:
    logger = logging.getLogger(REQUEST_LOG)
    before, level = list(logger.handlers), logger.level
    stream = io.StringIO()
    try:
        logger.handlers = [h for h in before if not getattr(h, "coe_request_log", False)]
        install(logging.INFO, stream)
        logger.info("%s", _Recorded({"request_id": "r1", "status": 200}))
        assert wait_until(lambda: stream.getvalue().endswith("\n"), timeout_s=5)
        assert json.loads(stream.getvalue()) == {"request_id": "r1", "status": 200}
        assert _Recorded.threads and threading.current_thread().name not in _Recorded.threads
    finally:
        logger.handlers, logger.level = before, level  # the test's writer thread is stopped at exit
