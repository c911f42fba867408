"""Optional API keys: stored as SHA-256 hashes, each with its allowed experts and a request rate limit."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import APIError


class KeyEntry(BaseModel):
    """One key as configured: never the key itself, only its hash."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    allowed_experts: list[str] | None = None
    requests_per_minute: int | None = Field(default=None, gt=0)


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = Field(min_length=1)


def hash_key(key: str) -> str:
    """The hex SHA-256 stored in the keys file (`coe keys hash` prints it)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class RateWindow:
    """A token bucket refilled at `per_minute` requests per minute."""

    per_minute: int
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.per_minute)

    def take(self) -> bool:
        """Spend one request if the bucket allows it."""
        now = time.monotonic()
        self.tokens = min(self.per_minute, self.tokens + (now - self.stamp) * self.per_minute / 60.0)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(frozen=True)
class Caller:
    """An authenticated key: its name (for logs, never the key) and what it may use."""

    name: str
    allowed: frozenset[str] | None


class KeyRing:
    """Checks `Authorization: Bearer` against the hashed keys."""

    def __init__(self, entries: list[KeyEntry]) -> None:
        self._entries = entries
        self._rates = {e.sha256: RateWindow(e.requests_per_minute) for e in entries if e.requests_per_minute}

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read a keys file; fail naming the file, key and reason."""
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls(KeysFile.model_validate(raw).keys)
        except OSError as exc:
            raise ValueError(f"{path}: cannot read API keys file: {exc.strerror or exc}") from exc
        except (yaml.YAMLError, ValidationError) as exc:
            raise ValueError(f"{path}: invalid API keys file: {exc}") from exc

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller for this header, or a 401/429."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(401, "Missing API key: send 'Authorization: Bearer <key>'.", code="invalid_api_key")
        digest = hash_key(token.strip())
        entry = next((e for e in self._entries if hmac.compare_digest(e.sha256, digest)), None)
        if entry is None:
            raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
        rate = self._rates.get(entry.sha256)
        if rate is not None and not rate.take():
            raise APIError(429, "Rate limit reached for this API key.", code="rate_limit_exceeded",
                           headers={"Retry-After": str(max(1, round(60 / rate.per_minute)))})
        allowed = frozenset(entry.allowed_experts) if entry.allowed_experts is not None else None
        return Caller(entry.name, allowed)
