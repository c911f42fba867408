"""The routing benchmark's sampler: every stage timed, bounded in count and time, safe across threads."""

from __future__ import annotations

import time

import pytest

from bench.modes.routing import STAGES, _row, measure
from bench.prompts import long_prompts, short_prompts


class StubRouter:
    """Answers at once, or after `delay_s`, with fixed stage timings."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls = 0

    def route_timed(self, text: str) -> tuple[str, dict[str, float]]:
        self.calls += 1
        time.sleep(self.delay_s)
        return "code", {"tokenise": 0.001, "embed": 0.002, "classify": 0.0005}


@pytest.mark.parametrize("threads", [1, 3])
def test_the_query_count_is_the_cap(threads: int) -> None:
    router = StubRouter()
    samples = measure(router, ["a", "b"], queries=10, threads=threads, cap_s=30.0)
    assert len(samples) == 10 == router.calls
    assert all(set(STAGES) <= set(s) for s in samples)


def test_the_time_is_the_cap() -> None:
    router = StubRouter(delay_s=0.05)
    samples = measure(router, ["a"], queries=10_000, threads=2, cap_s=0.2)
    assert 1 <= len(samples) < 40


def test_a_row_reports_p50_and_p99_per_stage() -> None:
    samples = [{"tokenise": 0.001, "embed": 0.002, "classify": 0.0005, "total": 0.004}] * 3
    row = _row("r", "short", 1, samples)
    assert row[:4] == ["r", "short", "1", "3"]
    assert row[5] == "2.00 / 2.00"


def test_prompts_come_from_the_projects_data_and_long_ones_fill_the_cap() -> None:
    shorts = short_prompts(8)
    assert len(shorts) == 8 and all(shorts)
    assert {len(text) for text in long_prompts(3)} == {2000}
