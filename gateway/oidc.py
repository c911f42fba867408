"""Single sign-on: OIDC/JWT bearer tokens checked against the issuer's keys (JWKS from a URL or a file)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import jwt
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.errors import APIError

# Asymmetric algorithms only: `none` and the HMAC family are never accepted, so a public key cannot be
# reused as an HMAC secret.
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
_FAMILY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class OIDCSettings(BaseSettings):
    """`COE_OIDC_*`: issuer, audience, where the keys are, and which claims carry the subject and roles."""

    model_config = SettingsConfigDict(env_prefix="COE_OIDC_", extra="ignore")

    issuer: str | None = None
    audience: str | None = None
    jwks: str | None = Field(default=None, description="a JWKS URL (http/https) or a file path")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    leeway_s: float = Field(default=30.0, ge=0, le=300)
    subject_claim: str = "sub"
    role_claims: list[str] = Field(default_factory=lambda: ["roles", "groups"])
    jwks_ttl_s: float = Field(default=300.0, gt=0)
    jwks_min_refresh_s: float = Field(default=30.0, ge=0, description="at most one refetch per this, on unknown kid")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a not in ASYMMETRIC]
        if bad or not value:
            raise ValueError(f"only asymmetric algorithms may be allowed, not {bad or 'none'}")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.audience and self.jwks)


def unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_token", headers={"WWW-Authenticate": "Bearer"})


class JwksCache:
    """The issuer's keys by `kid`, cached for `ttl_s`, refetched on an unknown `kid` at most every `min_refresh_s`."""

    def __init__(self, source: str, client: httpx.AsyncClient | None, ttl_s: float, min_refresh_s: float) -> None:
        self._source = source
        self._client = client
        self._ttl_s = ttl_s
        self._min_refresh_s = min_refresh_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = anyio.Lock()
        self.fetches = 0

    async def _fetch(self) -> dict[str, Any]:
        if self._source.startswith(("http://", "https://")):
            if self._client is None:
                raise RuntimeError("a JWKS URL needs an HTTP client")
            response = await self._client.get(self._source, timeout=5.0)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data
        text = await anyio.to_thread.run_sync(Path(self._source).read_text)
        loaded: dict[str, Any] = json.loads(text)
        return loaded

    async def refresh(self) -> None:
        """Fetch the key set now; keys without a `kid` or of unusable types are skipped."""
        data = await self._fetch()
        self.fetches += 1
        keys = {}
        for raw in data.get("keys", []):
            if not isinstance(raw, dict) or not raw.get("kid") or raw.get("kty") == "oct":
                continue
            try:
                keys[str(raw["kid"])] = jwt.PyJWK(raw)
            except jwt.PyJWTError:
                continue
        self._keys, self._fetched_at = keys, time.monotonic()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key for `kid`, refreshing when stale or (rate limited) when the `kid` is new: keys rotate."""
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if age > self._ttl_s or (kid not in self._keys and age > self._min_refresh_s):
                try:
                    await self.refresh()
                except (httpx.HTTPError, OSError, ValueError) as exc:
                    if not self._keys:
                        raise APIError(503, "The identity provider's keys cannot be fetched.",
                                       code="jwks_unavailable", headers={"Retry-After": "5"}) from exc
            return self._keys.get(kid)


@dataclass(frozen=True)
class TokenIdentity:
    """A verified token: who it names and the role-bearing claim values it carries."""

    subject: str
    groups: tuple[str, ...]
    claims: dict[str, Any]


class TokenVerifier:
    """Verifies signature, issuer, audience, expiry and not-before, then reads subject and roles."""

    def __init__(self, settings: OIDCSettings, jwks: JwksCache) -> None:
        self._settings = settings
        self._jwks = jwks

    async def verify(self, token: str) -> TokenIdentity:
        """The identity in `token`, or a 401 that names no secret."""
        s = self._settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise unauthorized("The bearer token is not a valid JWT.") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in s.algorithms:
            raise unauthorized("The token's signing algorithm is not accepted.")
        if not isinstance(kid, str):
            raise unauthorized("The token names no signing key (kid).")
        key = await self._jwks.key(kid)
        if key is None:
            raise unauthorized("The token's signing key is unknown.")
        if _FAMILY.get(alg[:2]) != key.key_type:
            raise unauthorized("The token's algorithm does not match its signing key.")
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=s.audience, issuer=s.issuer,
                                leeway=s.leeway_s, options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("The token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise unauthorized(f"The token was refused: {type(exc).__name__}.") from exc
        subject = claims.get(s.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise unauthorized(f"The token has no '{s.subject_claim}' claim.")
        groups: list[str] = []
        for name in s.role_claims:
            value = claims.get(name)
            groups += [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]
        return TokenIdentity(subject, tuple(groups), claims)
