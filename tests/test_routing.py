"""Which text is routed on, and how categories, confidence and keys become an expert."""

from __future__ import annotations

import json

import anyio
import pytest

from coe_testing.routers import KeywordRouter
from gateway.contention import Contention
from gateway.errors import APIError
from gateway.loop_lag import LoopLag
from gateway.protocol import ParsedRequest, parse_chat, parse_completion
from gateway.routing import ExpertSelector, routing_text
from gateway.work_budget import WorkBudget
from tests.fixtures_gateway import make_registry

URLS = {"code": "http://c/v1", "math": "http://m/v1", "general": "http://g/v1"}


def chat(payload: dict[str, object]) -> ParsedRequest:
    return parse_chat(json.dumps(payload).encode())


def completion(payload: dict[str, object]) -> ParsedRequest:
    return parse_completion(json.dumps(payload).encode())


def test_policy_uses_last_user_turn_with_bounded_context() -> None:
    payload = {"messages": [
        {"role": "system", "content": "You are a helpful assistant for ACME."},
        {"role": "user", "content": "how do I sort a list in python"},
        {"role": "assistant", "content": "use sorted()"},
        {"role": "user", "content": [{"type": "text", "text": "and in reverse?"}]},
    ]}
    assert routing_text(chat(payload), 1000) == "how do I sort a list in python\nand in reverse?"
    assert routing_text(chat(payload), 0) == "and in reverse?"
    assert routing_text(chat(payload), 5) == "how d\nand in reverse?"


def test_policy_for_completions_and_long_text() -> None:
    assert routing_text(completion({"prompt": "def f():"}), 100) == "def f():"
    assert routing_text(completion({"prompt": ["first", "second"]}), 100) == "first"
    assert routing_text(completion({"prompt": [1, 2, 3]}), 100) == ""
    assert len(routing_text(chat({"messages": [{"role": "user", "content": "x" * 50_000}]}), 100)) == 2000


def decide(payload: dict[str, object], allowed: frozenset[str] | None = None):  # type: ignore[no-untyped-def]
    selector = ExpertSelector(make_registry(URLS), KeywordRouter())
    return anyio.run(selector.decide, chat(payload), allowed)


def test_classified_low_confidence_and_pinned() -> None:
    routed = decide({"model": "auto", "messages": [{"role": "user", "content": "python bug"}]})
    assert (routed.expert.name, routed.reason, routed.category) == ("code", "classified", "code")
    assert [e.name for e in routed.candidates] == ["code", "math", "general"]
    unsure = decide({"model": "auto", "messages": [{"role": "user", "content": "unsure python"}]})
    assert (unsure.expert.name, unsure.reason) == ("general", "low_confidence")
    pinned = decide({"model": "math", "messages": [{"role": "user", "content": "python"}]})
    assert (pinned.expert.name, pinned.reason, pinned.candidates) == ("math", "pinned", (pinned.expert,))
    empty = decide({"model": "auto", "messages": [{"role": "system", "content": "only a system prompt"}]})
    assert (empty.expert.name, empty.reason) == ("general", "low_confidence")


def test_api_key_limits() -> None:
    limited = decide({"model": "auto", "messages": [{"role": "user", "content": "python"}]}, frozenset({"math"}))
    assert limited.expert.name == "math" and [e.name for e in limited.candidates] == ["math"]
    with pytest.raises(APIError) as caught:
        decide({"model": "code", "messages": [{"role": "user", "content": "x"}]}, frozenset({"math"}))
    assert caught.value.status == 403
    with pytest.raises(APIError) as unknown:
        decide({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert unknown.value.status == 404


def test_a_request_without_model_is_routed() -> None:
    routed = decide({"messages": [{"role": "user", "content": "python bug"}]})
    assert (routed.expert.name, routed.reason) == ("code", "classified")


def test_unreadable_messages_route_on_what_can_be_read() -> None:
    request = chat({"messages": [42, {"role": "user", "content": 7}, {"role": "custom", "content": "x"},
                                 {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "hi"}]}]})
    assert routing_text(request, 1000) == "\nhi"


class TwoStages:
    """A cascade double: the first stage says `math` (sure only when the text says so), the second says `code`."""

    categories = KeywordRouter.categories

    def __init__(self) -> None:
        self.second_calls = 0
        self.keyword = KeywordRouter()

    def route(self, text: str):  # type: ignore[no-untyped-def]
        raise AssertionError("a cascade is asked stage by stage")

    def route_first(self, text: str):  # type: ignore[no-untyped-def]
        return self.keyword.route("solve"), "sure" in text

    def route_second(self, text: str):  # type: ignore[no-untyped-def]
        self.second_calls += 1
        return self.keyword.route("python")


def test_cascade_second_stage_only_when_unsure_and_a_thread_is_free() -> None:
    router = TwoStages()
    selector = ExpertSelector(make_registry(URLS), router, max_parallel=1)  # type: ignore[arg-type]

    async def category(text: str) -> tuple[str | None, str | None]:
        request = chat({"model": "auto", "messages": [{"role": "user", "content": text}]})
        choice = await selector.decide(request)
        return choice.category, choice.stage

    assert anyio.run(category, "sure thing") == ("math", "first") and router.second_calls == 0
    assert anyio.run(category, "no idea") == ("code", "second") and router.second_calls == 1
    long = anyio.run(category, "no idea " * 200)  # long: first stage in a thread
    assert long == ("code", "second") and router.second_calls == 2

    async def while_busy() -> tuple[str | None, str | None]:
        async with selector._limiter:  # every routing thread taken: the first stage's answer stands
            return await category("no idea")

    assert anyio.run(while_busy) == ("math", "first_busy") and router.second_calls == 2


def test_cascade_second_stage_gives_way_while_the_event_loop_runs_late() -> None:
    router, lag = TwoStages(), LoopLag(busy_ms=3.0)
    selector = ExpertSelector(make_registry(URLS), router, loop_lag=lag)  # type: ignore[arg-type]

    async def category() -> tuple[str | None, str | None]:
        request = chat({"model": "auto", "messages": [{"role": "user", "content": "no idea"}]})
        choice = await selector.decide(request)
        return choice.category, choice.stage

    lag.lag_ms = 10.0  # the relay is short of CPU: the fast stage's answer stands
    assert anyio.run(category) == ("math", "first_busy") and router.second_calls == 0
    lag.lag_ms = 0.5
    assert anyio.run(category) == ("code", "second") and router.second_calls == 1
    lag.busy_ms, lag.lag_ms = 0.0, 50.0  # 0 turns the signal off
    assert anyio.run(category) == ("code", "second") and router.second_calls == 2


def test_cascade_second_stage_stays_within_its_cpu_budget() -> None:
    now = [0.0]
    budget = WorkBudget(share=0.1, burst_s=0.02, clock=lambda: now[0])
    router = TwoStages()
    selector = ExpertSelector(make_registry(URLS), router, budget=budget)  # type: ignore[arg-type]

    def stage() -> str | None:
        request = chat({"model": "auto", "messages": [{"role": "user", "content": "no idea"}]})
        return anyio.run(selector.decide, request).stage

    assert stage() == "second" and router.second_calls == 1
    budget.spend(0.05)  # a second stage that took 50 ms of CPU leaves the bucket 30 ms in debt
    assert stage() == "first_busy" and router.second_calls == 1
    now[0] += 0.2  # 200 ms at a tenth of a core pay 20 ms back: still 10 ms in debt
    assert stage() == "first_busy"
    now[0] += 0.2
    assert stage() == "second" and router.second_calls == 2
    assert [stage() for _ in range(3)] == ["second"] * 3, "a second stage that costs ~nothing keeps its budget"


def test_work_budget_refills_at_its_share_up_to_its_burst_and_zero_turns_it_off() -> None:
    now = [0.0]
    budget = WorkBudget(share=0.5, burst_s=0.1, clock=lambda: now[0])
    budget.spend(0.3)
    now[0] = 0.39
    assert not budget.available  # 0.1 - 0.3 + 0.39 * 0.5 < 0
    now[0] = 0.41
    assert budget.available
    now[0] = 100.0
    budget.available  # noqa: B018  (refills, capped at the burst)
    budget.spend(0.1)
    assert not budget.available
    off = WorkBudget(share=0.0)
    off.spend(100.0)
    assert off.available


def test_loop_lag_rises_when_callbacks_hog_the_loop_and_falls_when_idle() -> None:
    import time

    lag = LoopLag(busy_ms=3.0, interval_s=0.01, smoothing=0.5)

    async def measure(hog_s: float) -> float:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lag.run)
            deadline = time.perf_counter() + 0.4
            while time.perf_counter() < deadline:
                time.sleep(hog_s)  # noqa: ASYNC251 (a callback that holds the loop, as a saturated relay does)
                await anyio.sleep(0.001 if hog_s else 0.05)
            tg.cancel_scope.cancel()
        return lag.lag_ms

    assert anyio.run(measure, 0.02) > 3.0 and lag.busy
    assert anyio.run(measure, 0.0) < 3.0 and not lag.busy


def test_a_contended_machine_keeps_the_fast_answer_and_probes_once_a_second() -> None:
    now = [0.0]
    contention = Contention(limit=2.0, probe_s=1.0, weight=1.0, clock=lambda: now[0])
    router = TwoStages()
    selector = ExpertSelector(make_registry(URLS), router, contention=contention)  # type: ignore[arg-type]

    def stage() -> str | None:
        request = chat({"model": "auto", "messages": [{"role": "user", "content": "no idea"}]})
        return anyio.run(selector.decide, request).stage

    assert stage() == "second" and contention.ratio < 2.0  # a free core: wall time about the CPU time
    contention.observe(wall_s=0.030, cpu_s=0.005)  # a call that waited 25 ms for a core
    assert stage() == "first_busy" and router.second_calls == 1
    now[0] += 0.5
    assert stage() == "first_busy"
    now[0] += 0.6  # a probe is due: the second stage runs once, and its quick answer clears the signal
    assert stage() == "second" and router.second_calls == 2
    assert stage() == "second"
    off = Contention(limit=0.0)
    off.observe(wall_s=1.0, cpu_s=0.001)
    assert not off.high
