"""The resources the gateway serves for its experts: each one's name in metrics, path on the engine, parser."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.event_tap import MESSAGES as MESSAGES_EVENTS
from gateway.event_tap import RESPONSES as RESPONSES_EVENTS
from gateway.event_tap import EventDialect
from gateway.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ParsedRequest,
    parse_chat,
    parse_chat_batch,
    parse_completion,
    parse_tokenize,
)

R = TypeVar("R", bound=ParsedRequest)


@dataclass(frozen=True)
class Endpoint(Generic[R]):
    """One resource: its name in metrics, its path on the engine, and its parser.

    `on_root`: the path sits at the engine's root (vLLM's `/tokenize`), not under its `/v1` base URL.
    """

    name: str
    path: str
    parse: Callable[[bytes], R]
    on_root: bool = False
    events: EventDialect | None = None  # a typed-event stream (not chat's chunks ending in `data: [DONE]`)


CHAT = Endpoint[ChatCompletionRequest]("chat", "/chat/completions", parse_chat)
CHAT_BATCH = Endpoint[ChatCompletionRequest]("chat_batch", "/chat/completions/batch", parse_chat_batch)
COMPLETIONS = Endpoint[CompletionRequest]("completions", "/completions", parse_completion)
RESPONSES = Endpoint[ChatCompletionRequest]("responses", "/responses", parse_chat, events=RESPONSES_EVENTS)
MESSAGES = Endpoint[ChatCompletionRequest]("messages", "/messages", parse_chat, events=MESSAGES_EVENTS)
COUNT_TOKENS = Endpoint[ChatCompletionRequest]("count_tokens", "/messages/count_tokens", parse_chat)
TOKENIZE = Endpoint[ParsedRequest]("tokenize", "/tokenize", parse_tokenize, on_root=True)
DETOKENIZE = Endpoint[ParsedRequest]("detokenize", "/detokenize", parse_tokenize, on_root=True)
CONVERSATIONS = (CHAT, COMPLETIONS, RESPONSES, MESSAGES)  # what sessions keep with their expert
