"""Who is calling: an API key or an OIDC bearer token, mapped to a role; 401 or 403 otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.auth import KeyEntry, KeyRing
from gateway.errors import APIError
from gateway.oidc import TokenVerifier
from gateway.quota import Scope
from gateway.roles import PrivacyPolicy, Role, RoleBook


def _least(*limits: int | None) -> int | None:
    given = [limit for limit in limits if limit is not None]
    return min(given) if given else None


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a key name or a token subject, its role, and what they allow."""

    subject: str
    kind: Literal["key", "user"]
    role_name: str | None = None
    role: Role | None = None
    key: KeyEntry | None = None

    @property
    def allowed(self) -> frozenset[str] | None:
        """The experts both the key (if it lists any) and the role (if it lists any) allow; None: every expert."""
        sets = [s for s in (self.role.allowed if self.role else None,
                            frozenset(self.key.allowed_experts) if self.key and self.key.allowed_experts is not None
                            else None) if s is not None]
        if not sets:
            return None
        return frozenset.intersection(*sets)

    @property
    def admin(self) -> bool:
        """An admin role, or a key marked `admin: true` in the keys file."""
        return bool(self.role and self.role.admin) or bool(self.key and self.key.admin)

    def privacy(self, default: PrivacyPolicy) -> PrivacyPolicy:
        return self.role.privacy if self.role else default

    def scopes(self) -> list[Scope]:
        """What this caller's requests count against: itself (key or user) and its role."""
        role, key = self.role, self.key
        scopes = []
        rpm = _least(key.requests_per_minute if key else None, role.user_requests_per_minute if role else None)
        tpm = _least(key.tokens_per_minute if key else None, role.user_tokens_per_minute if role else None)
        if rpm or tpm:
            scopes.append(Scope(self.kind, self.subject, rpm, tpm))
        if role is not None and self.role_name and (role.requests_per_minute or role.tokens_per_minute):
            scopes.append(Scope("role", self.role_name, role.requests_per_minute, role.tokens_per_minute))
        return scopes


def _unauthenticated(message: str, code: str = "invalid_api_key") -> APIError:
    return APIError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


class Authenticator:
    """Accepts a known API key or, when OIDC is configured, a valid token; maps either to a role."""

    def __init__(self, keys: KeyRing | None, verifier: TokenVerifier | None, roles: RoleBook | None) -> None:
        self._keys = keys
        self._verifier = verifier
        self._roles = roles

    def use_keys(self, keys: KeyRing | None) -> None:
        """Take a reloaded keys file; requests already authenticated keep their caller."""
        self._keys = keys

    @property
    def enabled(self) -> bool:
        """False when neither keys nor tokens are configured: the gateway is open (a trusted network)."""
        return self._keys is not None or self._verifier is not None

    async def authenticate(self, authorization: str | None) -> Principal | None:
        """The caller, None when authentication is off, or a 401/403 that names no secret."""
        if not self.enabled:
            return None
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            what = "an API key" if self._verifier is None else "an API key or a bearer token"
            raise _unauthenticated(f"Missing credentials: send 'Authorization: Bearer' with {what}.")
        entry = self._keys.identify(credential) if self._keys is not None else None
        if entry is not None:
            return self._for_key(entry)
        if self._verifier is not None and credential.count(".") == 2:  # shaped like a JWT: header.payload.sig
            identity = await self._verifier.verify(credential)
            return self._for_user(identity.subject, identity.groups)
        if self._verifier is None:
            raise _unauthenticated("Incorrect API key provided.")
        raise _unauthenticated("Neither a known API key nor a valid bearer token.", code="invalid_token")

    def _for_key(self, entry: KeyEntry) -> Principal:
        if self._roles is None:
            return Principal(entry.name, "key", key=entry)
        found = self._roles.for_key(entry.name)
        if found is None:
            raise APIError(403, "This API key has no role on this gateway.", code="no_role")
        return Principal(entry.name, "key", found[0], found[1], entry)

    def _for_user(self, subject: str, groups: tuple[str, ...]) -> Principal:
        if self._roles is None:
            return Principal(subject, "user")
        found = self._roles.for_groups(groups)
        if found is None:
            raise APIError(403, "Your identity maps to no role on this gateway.", code="no_role")
        return Principal(subject, "user", found[0], found[1])
