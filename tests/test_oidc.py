"""Bearer tokens: real keys, real tokens, a real JWKS server on loopback, and the attacks that must fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from coe_testing.servers import ServerThread
from gateway.errors import APIError
from gateway.oidc import JwksCache, OIDCSettings, TokenVerifier

ISS, AUD = "https://idp.example.test", "coe-gateway"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}


def mint(key: Any = RSA_KEY, kid: str = "rsa-1", alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 300, "groups": ["analysts"], **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def jwks_server() -> Iterator[tuple[ServerThread, dict[str, Any]]]:
    served: dict[str, Any] = {"keys": [public_jwk(RSA_KEY, "rsa-1"), public_jwk(EC_KEY, "ec-1")], "hits": 0}

    async def jwks(request: Request) -> JSONResponse:
        served["hits"] += 1
        return JSONResponse({"keys": served["keys"]})

    with ServerThread(Starlette(routes=[Route("/jwks", jwks)]), lifespan="off") as server:
        yield server, served


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
    unsigned = jwt.encode({"iss": ISS, "aud": AUD, "sub": "eve", "exp": int(time.time()) + 60}, None,
                          algorithm="none", headers={"kid": "rsa-1"})
    assert "not accepted" in refused(url, unsigned)
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"rsa-1","typ":"JWT"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps({"iss": ISS, "aud": AUD, "sub": "eve",
                                                   "exp": int(time.time()) + 60}).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + payload, hashlib.sha256).digest()).rstrip(b"=")
    assert "not accepted" in refused(url, (header + b"." + payload + b"." + signature).decode())
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
