"""Errors in the OpenAI shape `{"error": {"message", "type", "param", "code"}}`, ours and the engines'."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.responses import JSONResponse, Response

_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_type_for(status: int) -> str:
    """The OpenAI error `type` that goes with an HTTP status."""
    if status in _TYPE_FOR_STATUS:
        return _TYPE_FOR_STATUS[status]
    return "server_error" if status >= 500 else "invalid_request_error"


class APIError(Exception):
    """An error answered to the client in the OpenAI shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or error_type_for(status)
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.raw = raw  # an engine's own OpenAI-shaped error body, answered byte for byte

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self, extra_headers: dict[str, str] | None = None) -> Response:
        """A JSON response carrying this error: the engine's bytes where it answered in the OpenAI shape."""
        headers = {**self.headers, **(extra_headers or {})}
        if self.raw is not None:
            return Response(self.raw, status_code=self.status, media_type="application/json", headers=headers)
        return JSONResponse(self.body(), status_code=self.status, headers=headers)

    def sse_event(self) -> bytes:
        """This error as one server-sent event, for failures after a stream has started."""
        return b"data: " + json.dumps(self.body(), separators=(",", ":")).encode() + b"\n\n"


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400 invalid_request_error."""
    return APIError(400, message, param=param, code=code)


def model_not_found(requested: str) -> APIError:
    """A 404 for an unknown `model`, quoting at most a short prefix of what was asked."""
    shown = requested if len(requested) <= 64 else requested[:64] + "..."
    return APIError(
        404,
        f"The model '{shown}' does not exist. Use 'auto' or one of the names listed by GET /v1/models.",
        param="model",
        code="model_not_found",
    )


_OPENAI_FIELDS = frozenset({"message", "type", "param", "code"})


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def upstream_error(status: int, body: bytes, content_type: str = "") -> APIError:
    """An engine's error: a 4xx in the OpenAI shape kept as sent; any other body (flat, bare string, HTML, a 5xx)
    put into our shape, keeping its message."""
    message: str | None = None
    raw: bytes | None = None
    err_type: str | None = None
    param: str | None = None
    code: str | None = None
    parsed: Any = None
    if body:
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            parsed = None
    if isinstance(parsed, dict):
        inner = parsed.get("error", parsed)
        if isinstance(inner, dict):
            message = _text(inner.get("message")) or _text(inner.get("detail")) or _text(inner.get("msg"))
            err_type = _text(inner.get("type"))
            param = _text(inner.get("param"))
            code = inner.get("code") if isinstance(inner.get("code"), str) else None
            if inner is not parsed and message is not None and status < 500 and _OPENAI_FIELDS <= inner.keys():
                raw = body  # the client's own mistake, judged by the engine: its words and names, unchanged
        else:
            message = _text(inner)
        if message is None:
            detail = parsed.get("detail")
            message = _text(detail) or (json.dumps(detail)[:500] if detail is not None else None)
    elif isinstance(parsed, str):
        message = _text(parsed)
    if message is None and body and "html" not in content_type.lower():
        text = body.decode("utf-8", errors="replace").strip()
        if text and not text.lstrip().startswith("<"):
            message = text[:500]
    if message is None:
        message = f"The expert's engine answered HTTP {status}."
    if not (err_type and re.fullmatch(r"[a-z]+(_[a-z]+)*", err_type)) or err_type == "error":
        err_type = error_type_for(status)  # what we write ourselves uses OpenAI's names
    return APIError(status, message, type=err_type, param=param, code=code, raw=raw)
