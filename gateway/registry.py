"""The expert registry (`experts.yaml`): which experts exist, where they live, which categories they answer."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

log = logging.getLogger(__name__)

ROUTED_MODEL = "auto"
DEFAULT_MIN_CONFIDENCE = 0.5


def default_router_artifact() -> Path:
    """The router artifact shipped inside the `router_model` package."""
    return Path(__file__).resolve().parent.parent / "router_model" / "artifacts" / "default"


class RegistryError(ValueError):
    """A registry file that cannot be used; the message names the file, the key and the reason."""


class ExpertTimeouts(BaseModel):
    """Per-expert overrides of the gateway-wide upstream timeouts (seconds)."""

    model_config = ConfigDict(extra="forbid")

    connect: float | None = Field(default=None, gt=0)
    first_byte: float | None = Field(default=None, gt=0)
    idle: float | None = Field(default=None, gt=0)
    total: float | None = Field(default=None, gt=0)


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


class ReplicaConfig(BaseModel):
    """One engine serving an expert; `name` is its short label in metrics (default: its index)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        return _http_url(value)


@dataclass(frozen=True)
class Replica:
    """A replica as the gateway uses it: its index among the expert's replicas, its label and base URL."""

    index: int
    label: str
    url: str

    @property
    def root_url(self) -> str:
        """The engine's own root, where vLLM serves `/tokenize`, `/detokenize` and `/version`."""
        return self.url.removesuffix("/v1")


class ExpertConfig(BaseModel):
    """One expert: a served model behind one OpenAI-compatible base URL, or several replicas of it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    url: str | None = Field(default=None, description="the engine's OpenAI-compatible base URL, ending in /v1")
    urls: list[str | ReplicaConfig] | None = Field(
        default=None, min_length=1, description="several engines serving the same model (replicas)"
    )
    model: str = Field(min_length=1, description="the model name the engine serves")
    categories: list[str] = Field(default_factory=list)
    description: str = ""
    # Read by tools that start engines (`coe up`); the gateway itself never looks inside.
    launch: dict[str, Any] | None = None
    timeouts: ExpertTimeouts = Field(default_factory=ExpertTimeouts)
    max_concurrency: int | None = Field(default=None, gt=0)

    resume: bool | None = Field(default=None, description="resume broken streams (default: the registry's policy)")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("urls")
    @classmethod
    def _http_each(cls, value: list[str | ReplicaConfig] | None) -> list[str | ReplicaConfig] | None:
        return None if value is None else [_http_url(v) if isinstance(v, str) else v for v in value]

    @model_validator(mode="after")
    def _one_address(self) -> ExpertConfig:
        if (self.url is None) == (self.urls is None):
            raise ValueError("give exactly one of 'url' (one engine) or 'urls' (replicas)")
        labels = [r.label for r in self.replicas]
        if len(set(labels)) != len(labels):
            raise ValueError(f"replica names must be unique; got {', '.join(labels)}")
        return self

    @property
    def replicas(self) -> list[Replica]:
        """The engines serving this expert, in registry order (one when `url` is given)."""
        specs = [self.url] if self.url is not None else list(self.urls or [])
        out = []
        for index, spec in enumerate(specs):
            url, name = (spec, None) if isinstance(spec, str) else (spec.url, spec.name)
            assert url is not None  # checked by the validator
            out.append(Replica(index, name or str(index), url))
        return out

    @property
    def base_url(self) -> str:
        """The first replica's base URL (tools that talk to one engine, such as the evaluation)."""
        return self.replicas[0].url

    @property
    def root_url(self) -> str:
        """The first replica's root, where vLLM serves `/tokenize`, `/detokenize` and `/version`."""
        return self.replicas[0].root_url

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == ROUTED_MODEL:
            raise ValueError(f"'{ROUTED_MODEL}' is reserved for routed requests")
        return value


class SessionConfig(BaseModel):
    """Conversations that stay with their expert (`gateway/sessions.py`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    margin: float = Field(default=0.2, ge=0.0, le=1.0, description="probability lead a new topic needs to switch")
    cooldown_turns: int = Field(default=2, ge=0, description="turns after a switch during which no switch happens")
    ttl_s: float = Field(default=1800.0, gt=0, description="a conversation idle this long is forgotten")
    max_sessions: int = Field(default=100_000, gt=0, description="conversations remembered per process (LRU)")


class RouterConfig(BaseModel):
    """Which router artifact to load and when to distrust it."""

    model_config = ConfigDict(extra="forbid")

    artifact: Path = Field(default_factory=default_router_artifact)
    min_confidence: float = Field(default=DEFAULT_MIN_CONFIDENCE, ge=0.0, le=1.0)
    context_chars: int = Field(default=1000, ge=0, description="earlier conversation text added to the last user turn")
    session: SessionConfig = Field(default_factory=SessionConfig)


class RoutingTable(BaseModel):
    """Measured routing (`coe experts eval --write`): per category the experts best first, and its provenance."""

    model_config = ConfigDict(extra="forbid")

    ranked: dict[str, list[str]] = Field(min_length=1)
    table: Path | None = Field(default=None, description="the table file the ranking came from")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    measured: str | None = None
    metric: str | None = None

    @model_validator(mode="after")
    def _provenance(self) -> RoutingTable:
        if (self.table is None) != (self.sha256 is None):
            raise ValueError("'table' and 'sha256' go together (both, or neither for a hand-written ranking)")
        return self


class ResumePolicy(BaseModel):
    """Whether a stream that breaks after its first byte is continued elsewhere (`resume: true` is the short form)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    max_resumes: int = Field(default=2, ge=1, le=10, description="continuations per request")
    across_experts: bool = Field(default=False, description="routed requests may continue on the next-ranked expert")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value


class Registry(BaseModel):
    """The whole registry file."""

    model_config = ConfigDict(extra="forbid")

    fallback: str
    router: RouterConfig = Field(default_factory=RouterConfig)
    resume: ResumePolicy = Field(default_factory=ResumePolicy)
    experts: list[ExpertConfig] = Field(min_length=1)
    routing: RoutingTable | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Registry:
        names = [e.name for e in self.experts]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"expert names must be unique; repeated: {', '.join(duplicates)}")
        if self.fallback not in names:
            raise ValueError(f"fallback '{self.fallback}' is not one of the experts ({', '.join(names)})")
        for category, ranked in (self.routing.ranked if self.routing else {}).items():
            unknown = [name for name in ranked if name not in names]
            if unknown or not ranked:
                reason = f"unknown expert(s) {', '.join(unknown)}" if unknown else "empty ranking"
                raise ValueError(f"routing.ranked.{category}: {reason}; experts are {', '.join(names)}")
        return self

    def expert(self, name: str) -> ExpertConfig | None:
        """The expert called `name`, if any."""
        return next((e for e in self.experts if e.name == name), None)

    def resumes(self, expert: ExpertConfig) -> bool:
        """Whether streams of this expert may be resumed after their first byte."""
        return self.resume.enabled if expert.resume is None else expert.resume

    def ranked_experts(self, category: str) -> list[ExpertConfig]:
        """The experts for `category`, best first: the measured ranking, else those claiming it by hand."""
        if self.routing is not None and category in self.routing.ranked:
            return [e for name in self.routing.ranked[category] if (e := self.expert(name)) is not None]
        return [e for e in self.experts if category in e.categories]

    def expert_for_category(self, category: str) -> ExpertConfig:
        """The best-ranked expert for `category` (measured, else the first claiming it), else the fallback."""
        ranked = self.ranked_experts(category)
        if ranked:
            return ranked[0]
        fallback = self.expert(self.fallback)
        assert fallback is not None  # checked by the validator
        return fallback


def _format_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid expert registry"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def load_registry(path: Path | str) -> Registry:
    """Read and validate a registry file (YAML or JSON); raise RegistryError naming file, key and reason."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read expert registry: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML or JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise RegistryError(f"{path}: (top level): expected a mapping with 'fallback' and 'experts'")
    try:
        registry = Registry.model_validate(raw)
    except ValidationError as exc:
        raise RegistryError(_format_error(path, exc)) from exc
    if not registry.router.artifact.is_absolute():
        registry.router.artifact = (path.parent / registry.router.artifact).resolve()
    if registry.routing is not None:
        _check_routing(path, registry.routing, registry.router.artifact)
    return registry


def _check_routing(path: Path, routing: RoutingTable, artifact: Path) -> None:
    """A stale or foreign table fails at start-up: its file must match the checksum, its categories the router's."""
    if routing.table is not None:
        if not routing.table.is_absolute():
            routing.table = (path.parent / routing.table).resolve()
        try:
            digest = hashlib.sha256(routing.table.read_bytes()).hexdigest()
        except OSError as exc:
            raise RegistryError(f"{path}: routing.table: cannot read {routing.table}: {exc.strerror or exc}") from exc
        if digest != routing.sha256:
            raise RegistryError(
                f"{path}: routing.sha256: {routing.table} changed since the ranking was written "
                f"(sha256 {digest[:12]}..., expected {str(routing.sha256)[:12]}...); re-run `coe experts eval --write`"
            )
    try:
        known = json.loads((artifact / "meta.json").read_text(encoding="utf-8"))["categories"]
    except (OSError, ValueError, KeyError):
        return  # no readable router artifact here: the gateway reports that itself when it loads the router
    unknown = sorted(set(routing.ranked) - set(known))
    if unknown:
        raise RegistryError(
            f"{path}: routing.ranked: unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
            f"the router ({artifact.name}) knows {', '.join(known)}"
        )


def warn_unclaimed(registry: Registry, categories: tuple[str, ...] | list[str]) -> list[str]:
    """Log and return the router categories no expert claims (they go to the fallback)."""
    claimed = {c for e in registry.experts for c in e.categories}
    claimed |= set(registry.routing.ranked) if registry.routing else set()
    unclaimed = [c for c in categories if c not in claimed]
    for category in unclaimed:
        log.warning("category %r is claimed by no expert; it goes to fallback %r", category, registry.fallback)
    return unclaimed
