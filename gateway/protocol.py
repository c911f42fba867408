"""The typed view of a request: only what the gateway needs to route and relay; the engine judges the rest.

The body is parsed once. Everything the gateway does not need (sampling parameters, roles, content parts,
vLLM's extensions) is left exactly as the client sent it, so the engine's own checks and messages apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from gateway.errors import bad_request
from gateway.registry import ROUTED_MODEL

_BOOL = TypeAdapter(bool)  # pydantic's lax booleans, as vLLM reads them ("true", 1, ...)


@dataclass(frozen=True)
class Turn:
    """One chat message as routing sees it: its role and its text parts joined."""

    role: str
    text: str


@dataclass(frozen=True)
class ParsedRequest:
    """What every endpoint needs: the body to forward, the model asked for, and how to answer."""

    payload: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class ChatCompletionRequest(ParsedRequest):
    """A request made of turns: `POST /v1/chat/completions`, and the engine's other conversation APIs
    (`/v1/responses`, `/v1/messages`); `turns` are the messages that could be read (the engine checks them)."""

    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class CompletionRequest(ParsedRequest):
    """`POST /v1/completions`; `prompt_text` is the first text prompt, if any (token prompts have none)."""

    prompt_text: str


def parse_json_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400."""
    if not body.strip():
        raise bad_request("The request body is empty; expected a JSON object.")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON ({exc}); expected a JSON object.",
                          code="invalid_json") from exc
    if not isinstance(payload, dict):
        raise bad_request(f"The request body is a JSON {_json_kind(payload)}; expected a JSON object "
                          "such as {\"model\": \"auto\", \"messages\": [...]}.")
    return payload


def _json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


def _flag(payload: dict[str, Any], key: str, param: str) -> bool:
    value = payload.get(key)
    if value is None:
        return False
    try:
        return _BOOL.validate_python(value)
    except ValidationError as exc:
        raise bad_request(f"Invalid value for '{param}': expected a boolean (true or false).", param=param) from exc


def _common(payload: dict[str, Any]) -> tuple[str, bool, bool]:
    """`model` (absent or empty: routed), `stream`, and whether the client asked for a usage chunk."""
    model = payload.get("model")
    if model is None or model == "":
        model = ROUTED_MODEL
    elif not isinstance(model, str):
        raise bad_request(
            f"Invalid value for 'model': expected a string ('{ROUTED_MODEL}' or an expert's name).", param="model"
        )
    stream = _flag(payload, "stream", "stream")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request(
            "Invalid value for 'stream_options': expected an object such as {\"include_usage\": true}.",
            param="stream_options",
        )
    include_usage = _flag(options, "include_usage", "stream_options.include_usage") if options else False
    return model, stream, include_usage


# Text parts as chat (`text`), the Responses API (`input_text`, `output_text`) and Anthropic's Messages API name them.
TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the `text` of its text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (p for p in content if isinstance(p, dict) and p.get("type") in TEXT_PARTS)
        return "\n".join(p["text"] for p in parts if isinstance(p.get("text"), str))
    return ""


def parse_chat(body: bytes) -> ChatCompletionRequest:
    """A chat completion request; malformed messages are left for the engine to refuse in its own words."""
    payload = parse_json_body(body)
    model, stream, include_usage = _common(payload)
    return ChatCompletionRequest(payload, model, stream, include_usage, turns_of(payload))


def turns_of(payload: dict[str, Any]) -> tuple[Turn, ...]:
    """The messages that can be read as (role, text); the rest are the engine's to refuse.

    They are `messages` (chat, Anthropic's Messages API) or else the Responses API's `input`: a string (one
    user turn) or a list of items, of which those with a role are messages.
    """
    messages = payload.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], list):
        messages = messages[0]  # a batch of conversations (vLLM's `/v1/chat/completions/batch`): the first one
    if messages is None:
        messages = payload.get("input")
        if isinstance(messages, str):
            return (Turn("user", messages),)
    return tuple(
        Turn(m["role"], text_of(m.get("content")))
        for m in (messages if isinstance(messages, list) else ())
        if isinstance(m, dict) and isinstance(m.get("role"), str)
    )


def parse_chat_batch(body: bytes) -> ChatCompletionRequest:
    """vLLM's `/v1/chat/completions/batch`: conversations answered together, routed on the first; never a stream
    (the engine refuses `stream` in its own words)."""
    payload = parse_json_body(body)
    model, _, _ = _common({"model": payload.get("model")})
    return ChatCompletionRequest(payload, model, False, False, turns_of(payload))


def parse_completion(body: bytes) -> CompletionRequest:
    """A completion request; the prompt's shape is the engine's to check."""
    payload = parse_json_body(body)
    model, stream, include_usage = _common(payload)
    return CompletionRequest(payload, model, stream, include_usage, prompt_text_of(payload))


def prompt_text_of(payload: dict[str, Any]) -> str:
    """The first text prompt of a completions body (a string, or the first of a list of strings), else ""."""
    prompt = payload.get("prompt")
    if isinstance(prompt, list):
        prompt = prompt[0] if prompt and isinstance(prompt[0], str) else ""
    return prompt if isinstance(prompt, str) else ""


def parse_tokenize(body: bytes) -> ParsedRequest:
    """`/tokenize` and `/detokenize`: only `model` matters to the gateway (routed on `prompt` or `messages`)."""
    payload = parse_json_body(body)
    model, _, _ = _common({"model": payload.get("model")})
    if "messages" in payload:
        return ChatCompletionRequest(payload, model, False, False, turns_of(payload))
    prompt = payload.get("prompt")
    return CompletionRequest(payload, model, False, False, prompt if isinstance(prompt, str) else "")
