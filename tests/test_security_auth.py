"""Sign-on and roles through the real openai SDK: API keys or OIDC tokens, a real JWKS server, a real gateway."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from coe_testing.servers import ServerThread
from gateway.auth import hash_key
from gateway.oidc import OIDCSettings
from gateway.security_settings import SecuritySettings
from tests.fixtures_gateway import FakeStack
from tests.fixtures_security import (
    AUD,
    EC_KEY,
    ISS,
    hmac_with_public_key_token,
    mint,
    unsigned_token,
)

ROLES = """
roles:
  analyst: {experts: [math, general], groups: [analysts]}
  ops: {admin: true, groups: [ops]}
keys: {ci-bot: ops, narrow: analyst}
"""
CODE_QUESTION: Any = [{"role": "user", "content": "write a python function"}]


@pytest.fixture
def secured(stack_factory: Callable[..., FakeStack], tmp_path: Path,
            jwks_server: tuple[ServerThread, dict[str, Any]]) -> FakeStack:
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n"
                    f"  - {{name: ci-bot, sha256: {hash_key('sk-ci')}}}\n"
                    f"  - {{name: narrow, sha256: {hash_key('sk-narrow')}, allowed_experts: [math]}}\n"
                    f"  - {{name: orphan, sha256: {hash_key('sk-orphan')}}}\n")
    roles = tmp_path / "roles.yaml"
    roles.write_text(ROLES)
    oidc = OIDCSettings(issuer=ISS, audience=AUD, jwks=jwks_server[0].url + "/jwks", jwks_min_refresh_s=0)
    return stack_factory(api_keys_file=keys, security=SecuritySettings(roles_file=roles, oidc=oidc))


_OPEN: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def client(stack: FakeStack, credential: str) -> openai.OpenAI:
    """An SDK client that never retries (a 429 or 503 must be seen as it is); closed after the test."""
    made = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=credential, max_retries=0, timeout=10)
    _OPEN.append(made)
    return made


def refusal(stack: FakeStack, credential: str, model: str = "auto") -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        client(stack, credential).chat.completions.create(model=model, messages=CODE_QUESTION)
    error = caught.value
    body = error.body if isinstance(error.body, dict) else {}
    assert set(body) == {"message", "type", "param", "code"}, error.body  # the OpenAI error shape
    assert credential not in str(error.body) and credential not in str(error.response.headers)
    return error


def test_every_forged_or_stale_token_is_a_401(secured: FakeStack) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = {
        "expired": mint(exp=int(time.time()) - 120),
        "wrong audience": mint(aud="someone-else"),
        "wrong issuer": mint(iss="https://evil.example.test"),
        "unknown kid": mint(kid="nobody"),
        "bad signature": mint(other, "rsa-1"),
        "alg none": unsigned_token(groups=["ops"]),
        "hmac with the public key": hmac_with_public_key_token(groups=["ops"]),
        "not a token": "sk-nobody",
    }
    for name, token in forged.items():
        error = refusal(secured, token)
        assert isinstance(error, openai.AuthenticationError), name
        assert error.body["type"] == "authentication_error", name  # type: ignore[index]
        assert error.response.headers["www-authenticate"] == "Bearer", name
    missing = httpx.post(f"{secured.url}/v1/chat/completions", json={"model": "auto", "messages": CODE_QUESTION})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    metrics = httpx.get(f"{secured.url}/metrics").text
    assert 'coe_access_refused_total{code="invalid_token",status="401"} 8.0' in metrics
    assert secured.engines["code"].stats.requests == secured.engines["general"].stats.requests == 0


def test_valid_tokens_and_keys_get_their_roles(secured: FakeStack) -> None:
    # An analyst (RSA token) may not use `code`: routing stays within math and general, pinning it is a 403.
    raw = client(secured, mint()).chat.completions.with_raw_response.create(model="auto", messages=CODE_QUESTION)
    assert raw.headers["x-coe-expert"] in {"math", "general"} and raw.parse().choices[0].message.content
    assert secured.router.calls[-1] == "write a python function"  # the router did want code
    error = refusal(secured, mint(), "code")
    assert isinstance(error, openai.PermissionDeniedError) and error.body["code"] == "expert_not_allowed"  # type: ignore[index]
    assert 'coe_access_refused_total{code="expert_not_allowed",status="403"} 1.0' in httpx.get(
        f"{secured.url}/metrics").text
    listed = [m.id for m in client(secured, mint(EC_KEY, "ec-1", "ES256")).models.list()]
    assert listed == ["auto", "math", "general"]
    # ops (EC token, role by group) and the ci-bot key (role by key name) may use every expert.
    ops = client(secured, mint(EC_KEY, "ec-1", "ES256", sub="olga", groups=["ops"]))
    assert ops.chat.completions.with_raw_response.create(model="code", messages=CODE_QUESTION).headers[
        "x-coe-expert"] == "code"
    assert client(secured, "sk-ci").chat.completions.create(model="code", messages=CODE_QUESTION).model == "code"
    # A key's own allowed_experts narrows its role's: `narrow` is an analyst limited to math.
    assert [m.id for m in client(secured, "sk-narrow").models.list()] == ["auto", "math"]
    narrow = client(secured, "sk-narrow").chat.completions.with_raw_response.create(
        model="auto", messages=CODE_QUESTION)
    assert narrow.headers["x-coe-expert"] == "math"


def test_identities_with_no_role_are_a_403(secured: FakeStack) -> None:
    for credential in (mint(groups=["strangers"]), "sk-orphan"):
        error = refusal(secured, credential)
        assert isinstance(error, openai.PermissionDeniedError) and error.body["code"] == "no_role"  # type: ignore[index]


def test_jwks_unreachable_is_a_503_not_a_500(stack_factory: Callable[..., FakeStack]) -> None:
    oidc = OIDCSettings(issuer=ISS, audience=AUD, jwks="http://127.0.0.1:9/jwks")  # nothing listens on port 9
    stack = stack_factory(security=SecuritySettings(oidc=oidc))
    error = refusal(stack, mint())
    assert error.status_code == 503 and error.body["code"] == "jwks_unavailable"  # type: ignore[index]


def test_half_configured_sign_on_stops_start_up(stack_factory: Callable[..., FakeStack]) -> None:
    with pytest.raises(ValueError, match="COE_OIDC_AUDIENCE"):
        stack_factory(security=SecuritySettings(oidc=OIDCSettings(issuer=ISS, jwks="/nowhere.json")))
