"""The routing benchmark's sampler: every stage timed, bounded in count and time, safe across threads."""

from __future__ import annotations

import time

import pytest

from bench.modes.routing import POSTS, SHORT, STAGES, _checks, _row, measure
from bench.prompts import SHORT_CHARS, long_prompts, post_prompts, project_prompts, short_prompts


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
    assert row[-1] == "250"  # one thread, 4 ms a decision


def test_the_latency_goals_are_judged_on_the_whole_decision() -> None:
    fast = [{"total": 0.0004}] * 99 + [{"total": 0.0025}]
    slow = [{"total": 0.0004}] * 90 + [{"total": 0.004}] * 10
    assert [c.met for c in _checks(SHORT, fast)] == [True, True, True]
    assert [c.met for c in _checks(SHORT, slow)] == [True, False, False]  # p99 4 ms; 1,300 decisions/s
    assert [c.met for c in _checks(POSTS, [{"total": 0.006}] * 3)] == [False]


def test_prompts_come_from_the_projects_data_and_long_ones_fill_the_cap() -> None:
    shorts = short_prompts(64)
    assert len(shorts) == 64 and all(0 < len(text) <= SHORT_CHARS for text in shorts)
    assert {len(text) for text in long_prompts(3)} == {2000}
    posts = post_prompts(8)
    assert len(posts) == 8 and all(1500 <= len(text) <= 2000 for text in posts)
    whole = project_prompts()
    assert all(any(text.startswith(post) for text in whole) for post in posts)  # one text each, not joined
