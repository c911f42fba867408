"""The fake engine's request checks: OpenAI's ranges, refused in vLLM's error shape (the gateway passes them on)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import ErrorDetails
from starlette.responses import JSONResponse

from gateway.errors import APIError, bad_request


class _Open(BaseModel):
    """Fields we do not model still reach the engine (vLLM has many extensions)."""

    model_config = ConfigDict(extra="allow")


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: dict[str, Any] | str


class OtherPart(_Open):
    type: Literal["input_audio", "video_url", "file", "refusal", "audio_url"]


_PART_TAGS = {"text", "image_url", "input_audio", "video_url", "file", "refusal", "audio_url"}
ContentPart = Annotated[TextPart | ImagePart | OtherPart, Field(discriminator="type")]


class ChatMessage(_Open):
    role: str  # any role, as in vLLM: the chat template decides
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _content_required(self) -> ChatMessage:
        has_calls = bool(getattr(self, "tool_calls", None) or getattr(self, "function_call", None))
        if self.content is None and not (self.role == "assistant" and has_calls):
            raise ValueError("content is required for this role")
        return self


class StreamOptions(_Open):
    include_usage: bool | None = None
    continuous_usage_stats: bool | None = None


Stop = str | list[str] | None


class SamplingParams(_Open):
    """Parameters shared by chat and completions, with OpenAI's ranges."""

    model: str = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    max_tokens: int | None = Field(default=None, ge=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    stop: Stop = None
    user: str | None = None
    logit_bias: dict[str, float] | None = None

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> SamplingParams:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self


class ChatCompletionRequest(SamplingParams):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


class CompletionRequest(SamplingParams):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)
    best_of: int | None = Field(default=None, ge=1, le=20)
    suffix: str | None = None

    @model_validator(mode="after")
    def _prompt_not_empty(self) -> CompletionRequest:
        if isinstance(self.prompt, list) and not self.prompt:
            raise ValueError("prompt must not be empty")
        return self


_PARAM_OF_ROOT_RULE = {"stream_options is only allowed": "stream_options", "prompt must not be empty": "prompt"}


def _param_of(error: ErrorDetails) -> str | None:
    """OpenAI-style param path (`messages[0].role`) of a pydantic error, without union branch names."""
    parts: list[str] = []
    loc = error["loc"]
    for index, part in enumerate(loc):
        is_tag = part in _PART_TAGS and index > 0 and isinstance(loc[index - 1], int) and index < len(loc) - 1
        if is_tag:
            continue  # the discriminator's branch name, not a field
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif isinstance(part, str) and not (part[:1].isupper() or part in {"str", "list[int]", "list[str]"}):
            if "[" in part or part.startswith(("function-", "literal[")):
                continue  # union branch labels, not fields
            parts.append(("." if parts else "") + part)
    if not parts:
        message = str(error.get("msg", ""))
        return next((p for key, p in _PARAM_OF_ROOT_RULE.items() if key in message), None)
    return "".join(parts)


def _message_of(error: ErrorDetails, param: str | None) -> str:
    msg = str(error["msg"]).removeprefix("Value error, ")
    return f"Invalid value for '{param}': {msg}" if param else msg


def validate_request(model: type[SamplingParams], payload: dict[str, Any]) -> SamplingParams:
    """Validate a request body; the first problem becomes a 400 naming its `param`."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        # In a union the deepest error is the informative one ("unknown part type", not "not a string").
        errors = exc.errors(include_url=False)
        first = max(errors, key=lambda e: len(e["loc"]))
        if first["type"] == "missing":
            param = _param_of(first)
            raise bad_request(f"Missing required parameter: '{param}'.", param=param) from exc
        param = _param_of(first)
        raise bad_request(_message_of(first, param), param=param) from exc



def engine_error(error: APIError) -> JSONResponse:
    """An error as vLLM words it: its own `type` names, the status repeated as `code`."""
    body = {"error": {"message": error.message, "type": "BadRequestError", "param": error.param, "code": error.status}}
    return JSONResponse(body, status_code=error.status)


def check_request(payload: Any, chat: bool) -> JSONResponse | None:
    """None when the engine would accept the body; else its 400."""
    try:
        if not isinstance(payload, dict):
            raise bad_request("The request body must be a JSON object.")
        validate_request(ChatCompletionRequest if chat else CompletionRequest, payload)
    except APIError as error:
        return engine_error(error)
    return None


_STREAM_FLAG: TypeAdapter[bool | None] = TypeAdapter(bool | None)


def wants_stream(payload: dict[str, Any]) -> bool:
    """`stream` read as the engine's schema reads it (pydantic's lax booleans: "0" and "false" are false)."""
    return bool(_STREAM_FLAG.validate_python(payload.get("stream")))
