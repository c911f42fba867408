"""Conversations that stay with their expert: the key, the bounded store, and the rule, through the real SDK."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import openai
import pytest

from coe_testing.routers import GradedKeywordRouter
from gateway.protocol import parse_chat
from gateway.sessions import SessionStore, session_key
from tests.fixtures_gateway import FakeStack

CODE_QUESTION = "write a python function that reverses a list"
MATH_QUESTION = "solve the equation x^2 = 4 and take the derivative"


def chat_body(user: str | None, *turns: str) -> bytes:
    import json

    messages: list[dict[str, str]] = []
    for i, turn in enumerate(turns):
        messages.append({"role": "user", "content": turn})
        if i < len(turns) - 1:
            messages.append({"role": "assistant", "content": f"answer {i}"})
    body: dict[str, Any] = {"model": "auto", "messages": messages}
    if user is not None:
        body["user"] = user
    return json.dumps(body).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- the key -----------------------------------------------------------------------------------------------------


def test_header_key_is_scoped_by_the_credential() -> None:
    request = parse_chat(chat_body(None, "hi"))
    a = session_key({"x-session-id": "s1", "authorization": "Bearer key-a"}, request)
    b = session_key({"x-session-id": "s1", "authorization": "Bearer key-b"}, request)
    assert a is not None and b is not None and a != b
    assert session_key({"x-conversation-id": "s1", "authorization": "Bearer key-a"}, request) == a
    assert session_key({"x-session-id": "has space"}, request) is None  # not a sane id: ignored
    # An authenticated caller is scoped by its name or subject: a refreshed token keeps the session.
    alice = session_key({"x-session-id": "s1", "authorization": "Bearer token-1"}, request, "alice")
    assert alice == session_key({"x-session-id": "s1", "authorization": "Bearer token-2"}, request, "alice")
    assert alice != session_key({"x-session-id": "s1", "authorization": "Bearer token-1"}, request, "bob")


def test_user_key_follows_the_conversation_and_never_crosses_users() -> None:
    turn1 = parse_chat(chat_body("alice", CODE_QUESTION))
    turn3 = parse_chat(chat_body("alice", CODE_QUESTION, "and in rust?", "shorter please"))
    assert session_key({}, turn1) == session_key({}, turn3) is not None
    bob = parse_chat(chat_body("bob", CODE_QUESTION))
    assert session_key({}, bob) != session_key({}, turn1)
    other_topic = parse_chat(chat_body("alice", "tell me a story"))
    assert session_key({}, other_topic) != session_key({}, turn1)
    # Field boundaries are length-prefixed: moving text between `user` and the turn changes the key.
    assert session_key({}, parse_chat(chat_body("ab", "c"))) != session_key({}, parse_chat(chat_body("a", "bc")))
    assert session_key({}, parse_chat(chat_body(None, CODE_QUESTION))) is None


# --- the store ---------------------------------------------------------------------------------------------------


def test_store_evicts_the_least_recently_used() -> None:
    store = SessionStore(max_sessions=2, ttl_s=60)
    store.put(b"a", "code", "code")
    store.put(b"b", "math", "math")
    assert store.get(b"a") is not None  # a is now the most recent
    store.put(b"c", "general", None)
    assert len(store) == 2 and store.get(b"b") is None and store.get(b"a") is not None


def test_store_forgets_idle_conversations() -> None:
    clock = Clock()
    store = SessionStore(max_sessions=10, ttl_s=30, clock=clock)
    store.put(b"a", "code", "code")
    clock.now = 20
    store.put(b"b", "math", "math")
    clock.now = 31
    assert store.get(b"a") is None
    store.put(b"c", "code", None)  # expired entries at the old end go on every insert
    assert len(store) == 2
    clock.now = 100
    store.put(b"d", "code", None)
    assert len(store) == 1


def test_100k_sessions_stay_within_the_bound() -> None:
    store = SessionStore(max_sessions=100_000, ttl_s=3600)
    request = parse_chat(chat_body("u", "q"))
    tracemalloc.start()
    try:
        for i in range(110_000):
            key = session_key({"x-session-id": f"conversation-{i}"}, request)
            assert key is not None
            store.put(key, "code", "code")
        size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store) == 100_000
    per_session = size / 100_000
    print(f"{per_session:.0f} bytes per session, {size / 2**20:.1f} MiB for 100k (peak {peak / 2**20:.1f} MiB)")
    assert per_session < 400


# --- the rule, end to end --------------------------------------------------------------------------------------


def client_for(stack: FakeStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key="unused", max_retries=0, timeout=20)


class Conversation:
    """A conversation through the SDK: each turn sends the whole history, as chat clients do."""

    def __init__(self, stack: FakeStack, **extra: Any) -> None:
        self.client = client_for(stack)
        self.messages: list[dict[str, str]] = []
        self.extra = extra

    def say(self, text: str) -> tuple[str, str]:
        self.messages.append({"role": "user", "content": text})
        raw = self.client.chat.completions.with_raw_response.create(
            model="auto", messages=self.messages, **self.extra  # type: ignore[arg-type]
        )
        answer = raw.parse()
        self.messages.append({"role": "assistant", "content": answer.choices[0].message.content or ""})
        assert answer.model == raw.headers["x-coe-expert"]
        return raw.headers["x-coe-expert"], raw.headers["x-coe-route-reason"]


def session_count(stack: FakeStack, decision: str) -> float:
    value = stack.state.metrics.registry.get_sample_value("coe_session_decisions_total", {"decision": decision})
    return float(value or 0.0)


@pytest.fixture
def graded_stack(stack_factory: Callable[..., FakeStack]) -> Callable[..., FakeStack]:
    def build(**session: Any) -> FakeStack:
        # No earlier turns in the routing text: the follow-up is judged alone, so only the session keeps it.
        return stack_factory(router=GradedKeywordRouter(), router_config={"context_chars": 0, "session": session})
    return build


@pytest.mark.parametrize("how", ["header", "user"])
def test_follow_up_stays_with_code(graded_stack: Callable[..., FakeStack], how: str) -> None:
    stack = graded_stack()
    extra: dict[str, Any] = (
        {"extra_headers": {"x-session-id": "conv-1"}} if how == "header" else {"user": "alice"}
    )
    talk = Conversation(stack, **extra)
    assert talk.say(CODE_QUESTION) == ("code", "classified")
    assert talk.say("and in rust?") == ("code", "session")
    assert talk.say("shorter please") == ("code", "session")
    assert stack.router.calls[1] == "and in rust?"  # the router alone would have said general
    assert (session_count(stack, "new"), session_count(stack, "kept")) == (1, 2)


def test_without_a_session_the_follow_up_drifts(graded_stack: Callable[..., FakeStack]) -> None:
    talk = Conversation(graded_stack())
    assert talk.say(CODE_QUESTION) == ("code", "classified")
    assert talk.say("and in rust?") == ("general", "low_confidence")


def test_clear_topic_change_switches_then_cools_down(graded_stack: Callable[..., FakeStack]) -> None:
    stack = graded_stack(margin=0.5, cooldown_turns=2)
    talk = Conversation(stack, extra_headers={"x-conversation-id": "c-2"})
    assert talk.say(CODE_QUESTION) == ("code", "classified")
    assert talk.say(MATH_QUESTION) == ("math", "classified")  # 0.95 against code's 0.007: switch
    assert session_count(stack, "switched") == 1
    assert talk.say("fix this python bug in my function") == ("math", "session")  # cooling down: turn 1
    assert talk.say("fix this python bug in my function") == ("math", "session")  # cooling down: turn 2
    assert talk.say("fix this python bug in my function") == ("code", "classified")
    assert session_count(stack, "switched") == 2


def test_a_weak_new_topic_does_not_beat_the_margin(graded_stack: Callable[..., FakeStack]) -> None:
    stack = graded_stack(margin=0.8)
    talk = Conversation(stack, user="bob")
    assert talk.say(CODE_QUESTION) == ("code", "classified")
    assert talk.say("now the integral") == ("code", "session")  # math at 0.7: lead 0.66 < 0.8
    assert talk.say(MATH_QUESTION + " of the integral") == ("math", "classified")  # 0.95: lead 0.94


def test_two_users_with_the_same_question_do_not_share(graded_stack: Callable[..., FakeStack]) -> None:
    stack = graded_stack()
    alice, bob = Conversation(stack, user="alice"), Conversation(stack, user="bob")
    assert alice.say(MATH_QUESTION) == ("math", "classified")
    assert bob.say(CODE_QUESTION) == ("code", "classified")
    assert alice.say("and in rust?") == ("math", "session")
    assert bob.say("and in rust?") == ("code", "session")


def test_sessions_can_be_turned_off(graded_stack: Callable[..., FakeStack]) -> None:
    talk = Conversation(graded_stack(enabled=False), user="alice")
    talk.say(CODE_QUESTION)
    assert talk.say("and in rust?") == ("general", "low_confidence")


def test_pinned_requests_are_left_alone(graded_stack: Callable[..., FakeStack]) -> None:
    stack = graded_stack()
    raw = client_for(stack).chat.completions.with_raw_response.create(
        model="math", messages=[{"role": "user", "content": CODE_QUESTION}], extra_headers={"x-session-id": "p"},
    )
    assert raw.headers["x-coe-route-reason"] == "pinned"
    assert session_count(stack, "new") == 0
