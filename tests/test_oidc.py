"""Bearer tokens: real keys, real tokens, a real JWKS server on loopback, and the attacks that must fail."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from coe_testing.servers import ServerThread
from gateway.errors import APIError
from gateway.oidc import JwksCache, OIDCSettings, TokenVerifier
from tests.fixtures_security import (
    AUD,
    EC_KEY,
    ISS,
    hmac_with_public_key_token,
    mint,
    public_jwk,
    unsigned_token,
)


def verify(url: str, token: str, min_refresh_s: float = 0.0) -> Any:
    async def go() -> Any:
        settings = OIDCSettings(issuer=ISS, audience=AUD, jwks=url)
        async with httpx.AsyncClient() as client:
            cache = JwksCache(url, client, settings.jwks_ttl_s, min_refresh_s)
            return await TokenVerifier(settings, cache).verify(token)
    return anyio.run(go)


def refused(url: str, token: str) -> str:
    with pytest.raises(APIError) as caught:
        verify(url, token)
    assert caught.value.status == 401 and caught.value.headers["WWW-Authenticate"] == "Bearer"
    return caught.value.message


def test_valid_rsa_and_ec_tokens(jwks_server: tuple[ServerThread, dict[str, Any]]) -> None:
    url = jwks_server[0].url + "/jwks"
    identity = verify(url, mint())
    assert identity.subject == "alice" and identity.groups == ("analysts",)
    assert verify(url, mint(EC_KEY, "ec-1", "ES256", roles="admin")).groups == ("admin", "analysts")


def test_expired_wrong_audience_wrong_issuer_not_yet_valid(jwks_server: tuple[ServerThread, dict[str, Any]]) -> None:
    url = jwks_server[0].url + "/jwks"
    assert "expired" in refused(url, mint(exp=int(time.time()) - 120))
    verify(url, mint(exp=int(time.time()) - 10))  # within the clock-skew leeway
    assert "Audience" in refused(url, mint(aud="someone-else"))
    assert "Issuer" in refused(url, mint(iss="https://evil.example.test"))
    assert "Immature" in refused(url, mint(nbf=int(time.time()) + 600))


def test_unknown_kid_and_bad_signature(jwks_server: tuple[ServerThread, dict[str, Any]]) -> None:
    url = jwks_server[0].url + "/jwks"
    assert "unknown" in refused(url, mint(kid="nobody"))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "InvalidSignature" in refused(url, mint(other, "rsa-1"))
    token = mint()
    head, _body, sig = token.split(".")
    tampered_body = base64.urlsafe_b64encode(json.dumps({**jwt.decode(token, options={"verify_signature": False}),
                                                          "sub": "root"}).encode()).rstrip(b"=").decode()
    assert "InvalidSignature" in refused(url, f"{head}.{tampered_body}.{sig}")


def test_alg_none_and_public_key_as_hmac_secret(jwks_server: tuple[ServerThread, dict[str, Any]]) -> None:
    url = jwks_server[0].url + "/jwks"
    assert "not accepted" in refused(url, unsigned_token())
    assert "not accepted" in refused(url, hmac_with_public_key_token())
    with pytest.raises(ValueError):
        OIDCSettings(issuer=ISS, audience=AUD, jwks=url, algorithms=["HS256"])


def test_rotation_by_kid_refetches_once_within_rate_limit(jwks_server: tuple[ServerThread, dict[str, Any]]) -> None:
    server, served = jwks_server
    url = server.url + "/jwks"
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    async def go() -> None:
        settings = OIDCSettings(issuer=ISS, audience=AUD, jwks=url)
        async with httpx.AsyncClient() as client:
            cache = JwksCache(url, client, ttl_s=300, min_refresh_s=0.5)
            verifier = TokenVerifier(settings, cache)
            await verifier.verify(mint())
            served["keys"] = [public_jwk(new_key, "rsa-2")]  # the issuer rotates
            with pytest.raises(APIError):
                await verifier.verify(mint(new_key, "rsa-2"))  # too soon after the last fetch: not refetched
            assert cache.fetches == 1
            await anyio.sleep(0.6)
            assert (await verifier.verify(mint(new_key, "rsa-2"))).subject == "alice"
            with pytest.raises(APIError):
                await verifier.verify(mint(kid="rsa-1"))  # the old key is gone
            assert cache.fetches == 2
    anyio.run(go)


def test_jwks_from_a_file(tmp_path: Any) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(EC_KEY, "ec-1")]}))
    assert verify(str(path), mint(EC_KEY, "ec-1", "ES256")).subject == "alice"
