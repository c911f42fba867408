"""Engine error bodies: a 4xx in the OpenAI shape kept byte for byte, every other shape made into it."""

from __future__ import annotations

import json

import pytest

from gateway.errors import APIError, model_not_found, upstream_error


@pytest.mark.parametrize(("status", "body", "content_type", "message", "type_"), [
    (400, b'{"error":{"message":"bad max_tokens","type":"BadRequestError","param":"max_tokens","code":400}}',
     "application/json", "bad max_tokens", "invalid_request_error"),
    (400, b'{"object":"error","message":"flat","type":"invalid_request_error","param":null,"code":400}',
     "application/json", "flat", "invalid_request_error"),
    (422, b'{"detail":[{"loc":["body"],"msg":"field required"}]}', "application/json", "field required",
     "invalid_request_error"),
    (400, b'"a bare string"', "application/json", "a bare string", "invalid_request_error"),
    (502, b"<html><h1>Bad Gateway</h1></html>", "text/html", "The expert's engine answered HTTP 502.",
     "server_error"),
    (503, b"upstream connect error", "text/plain", "upstream connect error", "server_error"),
    (500, b"", "", "The expert's engine answered HTTP 500.", "server_error"),
    (429, b'{"error":"slow down"}', "application/json", "slow down", "rate_limit_error"),
])
def test_upstream_shapes(status: int, body: bytes, content_type: str, message: str, type_: str) -> None:
    error = upstream_error(status, body, content_type)
    assert error.status == status
    assert message in error.message
    assert error.type == type_
    assert set(error.body()["error"]) == {"message", "type", "param", "code"}


def test_an_engines_openai_shaped_4xx_is_answered_byte_for_byte() -> None:
    body = b'{"error":{"message":"bad max_tokens","type":"BadRequestError","param":"max_tokens","code":400}}'
    response = upstream_error(400, body, "application/json").response({"x-request-id": "r1"})
    assert response.body == body and response.status_code == 400
    assert response.headers["content-type"] == "application/json" and response.headers["x-request-id"] == "r1"


@pytest.mark.parametrize(("status", "body"), [
    (502, b'{"error":{"message":"engine crashed","type":"InternalServerError","param":null,"code":500}}'),
    (400, b'{"object":"error","message":"flat","type":"BadRequestError","param":null,"code":400}'),
    (400, b'{"error":{"message":"","type":"BadRequestError","param":null,"code":400}}'),
    (429, b'{"error":{"message":"slow down"}}'),
])
def test_other_engine_errors_are_put_in_our_shape(status: int, body: bytes) -> None:
    response = upstream_error(status, body, "application/json").response()
    assert response.body != body
    assert set(json.loads(response.body)["error"]) == {"message", "type", "param", "code"}


def test_param_is_kept_and_int_code_dropped() -> None:
    error = upstream_error(400, b'{"error":{"message":"m","param":"n","code":400}}')
    assert error.param == "n" and error.code is None


def test_model_not_found_quotes_at_most_a_prefix() -> None:
    error = model_not_found("x" * 10_000)
    assert error.status == 404 and error.code == "model_not_found" and len(error.message) < 200


def test_sse_event_shape() -> None:
    event = APIError(502, "broke", code="upstream_reset").sse_event()
    assert event.startswith(b'data: {"error":{"message":"broke","type":"server_error"') and event.endswith(b"\n\n")
