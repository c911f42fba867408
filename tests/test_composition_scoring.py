"""Exact scorers per item kind, and code tests contained in a limited subprocess."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from composition.data import EvalItem
from composition.sandbox import Limits, run_tests
from composition.scoring import chosen_label, exact_score, extract_code, last_number, score_short


def item(kind: str, answer: str | None, labels: tuple[str, ...] = (), aliases: tuple[str, ...] = ()) -> EvalItem:
    return EvalItem("x:1", "math", kind, "q", "r", answer=answer, labels=labels, aliases=aliases)


def test_numeric_compares_the_last_number() -> None:
    assert last_number("3 apples and 1,250.5 pears") == 1250.5
    assert exact_score(item("numeric", "18"), "16 - 3 - 4 = 9, 9 * 2 = 18. The answer is 18.") == 1.0
    assert exact_score(item("numeric", "18"), "The answer is 18. Then 19.") == 0.0
    assert exact_score(item("numeric", "-2.5"), "x = -2.50") == 1.0
    assert exact_score(item("numeric", "7"), "no idea") == 0.0


def test_choice_finds_the_chosen_label() -> None:
    letters = ("A", "B", "C", "D")
    assert chosen_label("B. because", letters) == "B"
    assert chosen_label("I think a good answer is C", letters) == "C"
    assert chosen_label("(D)", letters) == "D"
    assert chosen_label("none of these", letters) is None
    assert exact_score(item("choice", "yes", ("yes", "no", "maybe")), "Yes, it does.") == 1.0
    assert exact_score(item("choice", "A", letters), "The answer is B") == 0.0


def test_short_is_a_normalised_match_with_aliases() -> None:
    assert score_short("The Eiffel Tower!", "eiffel tower") == 1.0
    assert score_short("It is in Paris, France", "London", aliases=("Paris",)) == 1.0
    assert score_short("Parisian", "Paris") == 0.0


def test_extract_code_prefers_a_python_block() -> None:
    text = "Here:\n```bash\nls\n```\n```python\ndef f():\n    return 1\n```\nDone"
    assert extract_code(text) == "def f():\n    return 1\n"
    assert extract_code("def g(): pass") == "def g(): pass"


def run(setup: str, code: str, tests: tuple[str, ...], limits: Limits | None = None):  # type: ignore[no-untyped-def]
    return asyncio.run(run_tests(setup, code, tests, limits))


def test_code_tests_pass_and_fail_in_a_subprocess() -> None:
    assert run("", "def add(a, b):\n    return a + b", ("assert add(2, 3) == 5",)).passed
    failed = run("", "def add(a, b):\n    return a - b", ("assert add(2, 3) == 5",))
    assert not failed.passed and "AssertionError" in failed.reason
    # The candidate runs in another process: it cannot touch this one's state.
    assert run("", f"import os\nassert os.getpid() != {os.getpid()}", ()).passed


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("while True:\n    pass", "timeout"),
        ("x = bytearray(4 << 30)", "memory limit"),
    ],
)
def test_runaway_code_is_contained(code: str, reason: str) -> None:
    started = time.monotonic()
    result = run("", code, (), Limits(cpu_s=30, wall_s=2.0, memory_bytes=512 << 20))
    assert not result.passed and reason in result.reason
    assert time.monotonic() - started < 10


def test_cpu_limit_kills_a_busy_loop() -> None:
    result = run("", "while True:\n    pass", (), Limits(cpu_s=1, wall_s=20.0))
    assert not result.passed and "CPU limit" in result.reason
