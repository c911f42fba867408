"""Gateway settings, read once at the edge from flags and `COE_*` environment variables."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.security_settings import SecuritySettings


class Settings(BaseSettings):
    """Everything the gateway process can be told; each field is also `COE_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="COE_", extra="ignore")

    experts: Path = Path("experts.yaml")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, gt=0, lt=65536)
    log_level: str = "info"
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes; metrics are merged across them")
    request_log: bool = True

    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    first_byte_timeout_s: float = Field(default=120.0, gt=0)
    stream_idle_timeout_s: float = Field(default=60.0, gt=0)
    total_timeout_s: float = Field(default=900.0, gt=0)
    max_connections: int = Field(default=512, gt=0)

    retry_budget_ratio: float = Field(default=0.2, ge=0, le=1, description="failovers allowed per request seen")
    retry_budget_min: int = Field(default=10, ge=0, description="failovers always allowed per window")
    max_concurrency: int = Field(default=256, gt=0, description="per expert, unless the expert sets its own")
    max_queue: int = Field(default=64, ge=0, description="requests waiting per expert beyond the concurrency cap")
    queue_timeout_s: float = Field(default=5.0, gt=0)

    probe_interval_s: float = Field(default=5.0, gt=0)
    breaker_failures: int = Field(default=3, gt=0, description="consecutive failures that open an expert's breaker")
    breaker_cooldown_s: float = Field(default=10.0, gt=0)
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    router_busy_lag_ms: float = Field(
        default=3.0, ge=0, description="event-loop lag at which a cascade's second stage is skipped (0: never)")
    router_second_stage_share: float = Field(
        default=0.2, ge=0, description="share of one core a cascade's second stage may use, averaged (0: no bound)")
    router_max_contention: float = Field(
        default=2.0, ge=0,
        description="wall over CPU time of second-stage calls past which it is skipped: cores busy (0: never)")

    # Browsers' cross-origin rules: vLLM's flags (`--allowed-origins` etc.) with its defaults, so that a web app
    # allowed by an engine is allowed by the gateway the same way. No origin is allowed until one is listed
    # (`["*"]` for any); callers send their key or token in `Authorization`, which `*` headers allow.
    cors_allowed_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    cors_allowed_methods: list[str] = Field(default_factory=lambda: ["*"])
    cors_allowed_headers: list[str] = Field(default_factory=lambda: ["*"])

    api_keys_file: Path | None = None
    security: SecuritySettings = Field(default_factory=SecuritySettings)  # roles, tokens, limits, audit, guard


# Flags that override settings; `coe serve` and `coe up` both take them.
_FLAG_FIELDS = ("experts", "host", "port", "log_level", "workers")


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every command that serves the gateway takes."""
    parser.add_argument("--experts", type=Path, help="expert registry file (YAML or JSON); env COE_EXPERTS")
    parser.add_argument("--host", help="bind address (default 127.0.0.1; env COE_HOST)")
    parser.add_argument("--port", type=int, help="port (default 8080; env COE_PORT)")
    parser.add_argument("--log-level", help="uvicorn log level (env COE_LOG_LEVEL)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the flags the user gave."""
    overrides = {key: value for key in _FLAG_FIELDS if (value := getattr(args, key, None)) is not None}
    return Settings(**overrides)
