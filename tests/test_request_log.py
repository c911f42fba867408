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


class _CountingStream(io.StringIO):
    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_a_burst_of_records_is_written_in_one_write_and_nothing_is_lost() -> None:
    logger = logging.getLogger(REQUEST_LOG)
    before, level = list(logger.handlers), logger.level
    stream = _CountingStream()
    try:
        logger.handlers = [h for h in before if not getattr(h, "coe_request_log", False)]
        install(logging.INFO, stream)
        for n in range(200):
            logger.info("%s", LogLine({"request_id": f"r{n}"}))
        assert wait_until(lambda: stream.getvalue().count("\n") == 200, timeout_s=5)
        assert stream.writes <= 2  # one per 50 ms batch, not one per line
        logger.info("%s", LogLine({"request_id": "later"}))  # after a quiet spell the writer wakes again
        assert wait_until(lambda: stream.getvalue().endswith('{"request_id":"later"}\n'), timeout_s=5)
        assert [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()[:3]] == ["r0", "r1", "r2"]
    finally:
        logger.handlers, logger.level = before, level
