"""Optional API keys: stored as SHA-256 hashes, each with its allowed experts and its request and token limits."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class KeyEntry(BaseModel):
    """One key as configured: never the key itself, only its hash."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    allowed_experts: list[str] | None = None
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    admin: bool = False  # may use /admin/* like an admin role (reload, expert state, running config)


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = Field(min_length=1)


def hash_key(key: str) -> str:
    """The hex SHA-256 stored in the keys file (`coe keys hash` prints it)."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """Finds a presented key among the hashed ones."""

    def __init__(self, entries: list[KeyEntry]) -> None:
        self._entries = entries

    @property
    def entries(self) -> tuple[KeyEntry, ...]:
        """The configured keys (hashes only)."""
        return tuple(self._entries)

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

    def identify(self, key: str) -> KeyEntry | None:
        """The entry whose hash matches `key`, compared in constant time; limits are the caller's to apply."""
        digest = hash_key(key)
        found = None
        for entry in self._entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found
