"""Conversations that stay with their expert: the session key, a bounded LRU+TTL store, and the keep/switch rule."""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.protocol import ChatCompletionRequest, ParsedRequest
from gateway.registry import SessionConfig
from gateway.routing import ExpertChoice

SESSION_HEADERS = ("x-session-id", "x-conversation-id")
_SANE_ID = re.compile(r"^[\x21-\x7e]{1,256}$")  # printable ASCII, no spaces: anything else is ignored
_FIRST_TURNS = 1  # user turns hashed into a `user`-field key: the first one is there from turn one onwards
_NEVER_SWITCHED = 1 << 30


def _field(value: str) -> bytes:
    """A length-prefixed field, so no two different tuples of fields hash the same bytes."""
    raw = value.encode("utf-8", "surrogatepass")
    return b"%d:" % len(raw) + raw


def session_key(headers: Mapping[str, str], request: ParsedRequest, caller: str | None = None) -> bytes | None:
    """The conversation's key (a 16-byte digest), or None when the request names no conversation.

    Explicit: `x-session-id` or `x-conversation-id`. Implicit: the OpenAI `user` field together with the text of
    the conversation's first user turn, which every later turn of the same conversation repeats. Both are scoped
    by the caller (its key name or token subject; else the `Authorization` header), so one caller's clients cannot
    steer another's sessions, and a refreshed token keeps its subject's sessions.
    """
    scope = b"c" + _field(caller) if caller is not None else b"a" + _field(headers.get("authorization", ""))
    for name in SESSION_HEADERS:
        given = headers.get(name, "")
        if _SANE_ID.match(given):
            return hashlib.sha256(b"h" + scope + _field(given)).digest()[:16]
    user = request.payload.get("user")
    if not isinstance(user, str) or not user or not isinstance(request, ChatCompletionRequest):
        return None
    first = [turn.text for turn in request.turns if turn.role == "user"][:_FIRST_TURNS]
    if not first:
        return None
    parts = b"".join(_field(text) for text in first)
    return hashlib.sha256(b"u" + scope + _field(user) + parts).digest()[:16]


class SessionEntry:
    """One conversation: its expert, the category that expert was chosen for, turns since the last switch."""

    __slots__ = ("category", "expert", "since_switch", "touched")

    def __init__(self, expert: str, category: str | None, since_switch: int, touched: float) -> None:
        self.expert = expert
        self.category = category
        self.since_switch = since_switch
        self.touched = touched


class SessionStore:
    """At most `max_sessions` entries, least recently used evicted first; an entry idle past `ttl_s` is gone."""

    def __init__(self, max_sessions: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[bytes, SessionEntry] = OrderedDict()
        self._clock = clock
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s

    def __len__(self) -> int:
        return len(self._entries)

    def configure(self, max_sessions: int, ttl_s: float) -> None:
        """New bounds (a reload); shrinking evicts the oldest at once."""
        self.max_sessions, self.ttl_s = max_sessions, ttl_s
        self._evict(self._clock())

    def get(self, key: bytes) -> SessionEntry | None:
        """The live entry for `key` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        if now - entry.touched > self.ttl_s:
            del self._entries[key]
            return None
        entry.touched = now
        self._entries.move_to_end(key)
        return entry

    def put(self, key: bytes, expert: str, category: str | None) -> SessionEntry:
        """Start (or restart) a conversation on `expert`."""
        now = self._clock()
        entry = SessionEntry(expert, category, _NEVER_SWITCHED, now)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._evict(now)
        return entry

    def _evict(self, now: float) -> None:
        """Drop the expired from the old end (least recently used first), then anything past the bound."""
        entries = self._entries
        while entries:
            oldest = next(iter(entries.values()))
            if now - oldest.touched <= self.ttl_s and len(entries) <= self.max_sessions:
                break
            entries.popitem(last=False)


class SessionRouter:
    """Applies the session rule to a routed choice: keep the conversation's expert unless the new turn's
    category beats the kept one's probability by `margin`, and never within `cooldown_turns` of a switch."""

    def __init__(self, config: SessionConfig, registry: CollectorRegistry) -> None:
        self.config = config
        self.store = SessionStore(config.max_sessions, config.ttl_s)
        self.decisions = Counter(
            "coe_session_decisions", "Routed turns of known conversations: new, kept or switched expert",
            ["decision"], registry=registry,
        )
        self.size = Gauge("coe_sessions", "Conversations remembered (this process)", registry=registry,
                          multiprocess_mode="livesum")
        for decision in ("new", "kept", "switched"):
            self.decisions.labels(decision)

    def configure(self, config: SessionConfig) -> None:
        """Take a reloaded registry's session settings; remembered conversations stay."""
        self.config = config
        self.store.configure(config.max_sessions, config.ttl_s)
        self.size.set(len(self.store))

    def apply(self, key: bytes | None, choice: ExpertChoice) -> ExpertChoice:
        """The choice to serve: the router's, or the conversation's previous expert (reason `session`)."""
        if key is None or not self.config.enabled or not choice.routed:
            return choice
        try:
            return self._apply(key, choice)
        finally:
            self.size.set(len(self.store))

    def _apply(self, key: bytes, choice: ExpertChoice) -> ExpertChoice:
        entry = self.store.get(key)
        category = choice.category if choice.reason == "classified" else None
        if entry is None:
            self.store.put(key, choice.expert.name, category)
            self.decisions.labels("new").inc()
            return choice
        current = next((e for e in choice.candidates if e.name == entry.expert), None)
        if current is not None and (current is choice.expert or not self._switches(entry, choice)):
            entry.since_switch += 1
            self.decisions.labels("kept").inc()
            candidates = (current, *(e for e in choice.candidates if e is not current))
            return replace(choice, expert=current, reason="session", candidates=candidates)
        # Switch: a clear topic change, or the kept expert is gone (reloaded away, not allowed for this key).
        entry.expert, entry.category, entry.since_switch = choice.expert.name, category, 0
        self.decisions.labels("switched").inc()
        return choice

    def _switches(self, entry: SessionEntry, choice: ExpertChoice) -> bool:
        """Whether the new turn's top category clearly beats the conversation's, outside the cool-down."""
        if choice.reason != "classified" or choice.confidence is None:
            return False  # an unsure router is no evidence of a new topic
        if entry.since_switch < self.config.cooldown_turns:
            return False
        kept = dict(choice.ranked).get(entry.category, 0.0) if entry.category is not None else 0.0
        return choice.confidence - kept >= self.config.margin
