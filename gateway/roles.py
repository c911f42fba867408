"""Roles: per role the experts it may use, its request and token limits, privacy policy and admin flag."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class PrivacyPolicy(BaseModel):
    """What the guard does with personal data, and whether the audit keeps prompt and answer text."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["allow", "redact", "block"] = "redact"
    store_text: bool = False


class Role(BaseModel):
    """One role; `experts` omitted means every expert. Role limits hold for all its members together, user limits
    for each key or token subject in it."""

    model_config = ConfigDict(extra="forbid")

    experts: list[str] | None = None
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    user_requests_per_minute: int | None = Field(default=None, gt=0)
    user_tokens_per_minute: int | None = Field(default=None, gt=0)
    privacy: PrivacyPolicy = Field(default_factory=PrivacyPolicy)
    admin: bool = False
    groups: list[str] = Field(default_factory=list, description="IdP claim values that map to this role")

    @property
    def allowed(self) -> frozenset[str] | None:
        return frozenset(self.experts) if self.experts is not None else None


class RolesFile(BaseModel):
    """`roles:` by name, `keys:` key name to role, and the role of a token whose claims match none."""

    model_config = ConfigDict(extra="forbid")

    roles: dict[str, Role] = Field(min_length=1)
    keys: dict[str, str] = Field(default_factory=dict)
    default_role: str | None = None

    def model_post_init(self, _: object) -> None:
        unknown = {r for r in [*self.keys.values(), self.default_role] if r is not None} - set(self.roles)
        if unknown:
            raise ValueError(f"unknown roles referenced: {sorted(unknown)}")


class RoleBook:
    """Looks up the role of a key name or of a token's claim values."""

    def __init__(self, config: RolesFile) -> None:
        self.config = config

    @classmethod
    def load(cls, path: Path) -> RoleBook:
        """Read a roles file; fail naming the file and the reason."""
        try:
            return cls(RolesFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))))
        except OSError as exc:
            raise ValueError(f"{path}: cannot read roles file: {exc.strerror or exc}") from exc
        except (yaml.YAMLError, ValidationError, ValueError) as exc:
            raise ValueError(f"{path}: invalid roles file: {exc}") from exc

    def for_key(self, key_name: str) -> tuple[str, Role] | None:
        name = self.config.keys.get(key_name, self.config.default_role)
        return (name, self.config.roles[name]) if name else None

    def for_groups(self, groups: tuple[str, ...]) -> tuple[str, Role] | None:
        """The first role in file order that a claim value names (by role name or one of its `groups`)."""
        for name, role in self.config.roles.items():
            if name in groups or any(g in groups for g in role.groups):
                return name, role
        fallback = self.config.default_role
        return (fallback, self.config.roles[fallback]) if fallback else None
