"""Security settings: roles, shared limits, the audit trail and the default privacy policy (`COE_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.oidc import OIDCSettings


class SecuritySettings(BaseSettings):
    """Each field is also `COE_<FIELD>`; single sign-on has its own `COE_OIDC_*` block."""

    model_config = SettingsConfigDict(env_prefix="COE_", extra="ignore")

    roles_file: Path | None = None
    redis_url: str | None = Field(default=None, description="shared rate-limit counters; unset: in this process")
    redis_timeout_s: float = Field(default=0.5, gt=0)
    limits_fail_open: bool = Field(default=True, description="admit requests while Redis is unreachable")
    audit_db: Path | None = Field(default=None, description="an SQLite audit file (turns the audit trail on)")
    audit_dsn: str | None = Field(default=None, description="a PostgreSQL DSN; takes precedence over audit_db")
    audit_queue: int = Field(default=10_000, gt=0)
    audit_retention_days: float | None = Field(default=None, gt=0)
    privacy_policy: Literal["allow", "redact", "block"] = Field(
        default="allow", description="for callers without a role (no roles file, or authentication off)")
    privacy_store_text: bool = False
    guard_thread_chars: int = Field(default=2000, ge=0, description="texts longer than this are scanned in a thread")
    oidc: OIDCSettings = Field(default_factory=OIDCSettings)
