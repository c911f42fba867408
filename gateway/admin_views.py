"""What the admin endpoints show: each expert's live state, and the running configuration with secrets redacted."""

from __future__ import annotations

import re
from typing import Any

from gateway.state import GatewayState

REDACTED = "[redacted]"
# Names whose values are credentials wherever they appear (launch arguments, env, future fields).
_SECRET_NAME = re.compile(
    r"(^|[_-])(secret|password|passwd|token|credentials?|authorization|api[_-]?key|private[_-]?key|access[_-]?key)$",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)
_INLINE_PASSWORD = re.compile(r"\b(password|passwd|pwd)=[^\s&;]*", re.IGNORECASE)  # DSNs, query strings


def redact(value: Any, name: str = "") -> Any:
    """A copy with credential-named values and URL user-info replaced."""
    if name and _SECRET_NAME.search(name) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _INLINE_PASSWORD.sub(rf"\g<1>={REDACTED}", _URL_USERINFO.sub(rf"\g<1>{REDACTED}@", value))
    return value


def experts_view(state: GatewayState) -> dict[str, Any]:
    """Per expert of the running registry: breaker, requests in flight and queued, recent time to first token."""
    limiters = state.service.dispatcher.limiters if state.service is not None else {}
    rows = []
    health = state.health.snapshot()
    for expert in state.registry.experts:
        breaker = health.get(expert.name)
        limiter = limiters.get(expert.name)
        rows.append({
            "name": expert.name,
            "urls": [redact(replica.url) for replica in expert.replicas],
            "model": expert.model,
            "categories": expert.categories,
            "state": "unknown" if breaker is None else ("up" if breaker["up"] else "down"),
            "breaker": breaker,  # the best replica's state, and each replica's under "replicas"
            "in_flight": limiter.active if limiter is not None else 0,
            "queued": limiter.waiting if limiter is not None else 0,
            "capacity": limiter.capacity if limiter is not None else None,
            "ttft": state.metrics.recent_ttft.summary(expert.name),
        })
    return {"object": "list", "data": rows}


def config_view(state: GatewayState) -> dict[str, Any]:
    """The running registry and settings, secrets redacted, with where they came from and when."""
    keys = None
    if state.keys is not None:
        keys = [{"name": k.name, "admin": k.admin, "allowed_experts": k.allowed_experts,
                 "requests_per_minute": k.requests_per_minute} for k in state.keys.entries]
    return {
        "registry": redact(state.registry.model_dump(mode="json")),
        "settings": redact(state.settings.model_dump(mode="json")),
        "keys": keys,
        "sources": state.reloader.sources.describe() if state.reloader is not None else None,
    }
