"""The request path's security: who calls, what they may use, their limits, the privacy guard, the audit record."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
import httpx
from prometheus_client import Counter

from gateway.accounting import RequestRecord
from gateway.audit import AuditRecord, AuditWriter, PostgresStore, SQLiteStore
from gateway.auth import KeyRing
from gateway.errors import APIError
from gateway.guarding import RequestGuard
from gateway.identity import Authenticator, Principal
from gateway.metrics import NO_EXPERT, GatewayMetrics
from gateway.oidc import JwksCache, TokenVerifier
from gateway.privacy.guard import PersonalDataBlocked
from gateway.protocol import ChatCompletionRequest, CompletionRequest, ParsedRequest
from gateway.quota import MemoryCounters, Quota, RedisCounters
from gateway.roles import PrivacyPolicy, RoleBook
from gateway.security_settings import SecuritySettings

log = logging.getLogger(__name__)

R = TypeVar("R", bound=ParsedRequest)


class SecurityMetrics:
    """Refusals, store failures, dropped audit records and privacy findings: counts only, no names or values."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        r = metrics.registry
        self.refused = Counter("coe_access_refused", "Requests refused by authentication, roles or limits",
                               ["status", "code"], registry=r)
        self.limits_store_failures = Counter(
            "coe_limits_store_failures", "Rate-limit store (Redis) calls that failed; then fail open or closed",
            registry=r)
        self.audit_dropped = Counter(
            "coe_audit_dropped", "Audit records dropped: queue full, or the store kept failing", registry=r)
        self.privacy_findings = Counter("coe_privacy_findings", "Personal data found by the guard, by kind and policy",
                                        ["kind", "policy"], registry=r)


def _prompt_text(parsed: ParsedRequest) -> str:
    if isinstance(parsed, ChatCompletionRequest):
        return "\n".join(f"{t.role}: {t.text}" for t in parsed.turns)
    if isinstance(parsed, CompletionRequest):
        return parsed.prompt_text
    return ""


class Gate:
    """One request's passage: limits and guard on the way in, audit record and token usage on the way out."""

    def __init__(self, access: Access, record: RequestRecord, caller: Principal | None) -> None:
        self._access = access
        self._caller = caller
        self._policy = caller.privacy(access.default_privacy) if caller else access.default_privacy
        self._findings: dict[str, int] = {}
        self._prompt: str | None = None
        if self._policy.store_text and access.audit is not None:
            record.answer_parts = []
        record.on_close.append(self._closed)

    @property
    def allowed(self) -> frozenset[str] | None:
        """The experts routing may choose from for this caller (None: all)."""
        return self._caller.allowed if self._caller else None

    async def admit(self, parsed: R) -> R:
        """Count the request against the caller's limits, then guard its text; 429, 503 or 400 otherwise."""
        access = self._access
        if self._caller is not None:
            try:
                await access.quota.admit(self._caller.scopes())
            except APIError as refused:
                access.metrics.refused.labels(str(refused.status), refused.code or "none").inc()
                raise
        if self._policy.policy != "allow" or access.audit is not None:
            try:
                parsed, self._findings = await access.guard.apply(parsed, self._policy.policy)
            except PersonalDataBlocked as blocked:
                self._findings = blocked.findings
                raise
            finally:
                for kind, count in self._findings.items():
                    access.metrics.privacy_findings.labels(kind, self._policy.policy).inc(count)
        if self._policy.store_text and access.audit is not None:
            self._prompt = _prompt_text(parsed)  # after the guard: what left the gateway
        return parsed

    def _closed(self, record: RequestRecord) -> None:
        access, caller = self._access, self._caller
        if record.error_kind == "expert_not_allowed":
            access.metrics.refused.labels(str(record.status), record.error_kind).inc()
        tokens = (record.prompt_tokens or 0) + (record.output_tokens or 0)
        if caller is not None and tokens:
            access.spend_later(caller, tokens)
        if access.audit is None:
            return
        access.audit.submit(AuditRecord(
            request_id=record.request_id, subject=caller.subject if caller else None,
            role=caller.role_name if caller else None,
            expert=None if record.expert == NO_EXPERT else record.expert, category=record.category,
            reason=record.reason, status=record.status, prompt_tokens=record.prompt_tokens,
            completion_tokens=record.output_tokens, latency_ms=round((time.perf_counter() - record.started) * 1e3, 3),
            findings=self._findings, prompt_text=self._prompt,
            answer_text="".join(record.answer_parts) if record.answer_parts is not None else None,
        ))


class Access:
    """Built once per app from settings; started and stopped by the app's lifespan."""

    def __init__(self, authenticator: Authenticator, quota: Quota, guard: RequestGuard,
                 audit: AuditWriter | None, metrics: SecurityMetrics, default_privacy: PrivacyPolicy,
                 closers: list[Any] | None = None, audit_reader: Callable[[], SQLiteStore] | None = None) -> None:
        self.authenticator = authenticator
        self.quota = quota
        self.guard = guard
        self.audit = audit
        self.metrics = metrics
        self.default_privacy = default_privacy
        self._closers = closers or []
        self._audit_reader = audit_reader
        self._spending: set[asyncio.Task[None]] = set()

    @classmethod
    def build(cls, settings: SecuritySettings, keys: KeyRing | None, metrics: GatewayMetrics) -> Access:
        """Everything from settings; nothing connects until used. A half-configured OIDC block is an error."""
        security = SecurityMetrics(metrics)
        closers: list[Any] = []
        oidc, verifier = settings.oidc, None
        if any((oidc.issuer, oidc.audience, oidc.jwks)) and not oidc.enabled:
            raise ValueError("COE_OIDC_ISSUER, COE_OIDC_AUDIENCE and COE_OIDC_JWKS must be set together")
        if oidc.enabled:
            assert oidc.jwks is not None
            client = httpx.AsyncClient() if oidc.jwks.startswith(("http://", "https://")) else None
            closers += [client] if client else []
            verifier = TokenVerifier(oidc, JwksCache(oidc.jwks, client, oidc.jwks_ttl_s, oidc.jwks_min_refresh_s))
        roles = RoleBook.load(settings.roles_file) if settings.roles_file else None
        counters: Any = MemoryCounters()
        if settings.redis_url:
            import redis.asyncio as aioredis

            redis = aioredis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout_s,
                                      socket_connect_timeout=settings.redis_timeout_s)
            closers.append(redis)
            counters = RedisCounters(redis)
        quota = Quota(counters, settings.limits_fail_open, on_store_failure=security.limits_store_failures.inc)
        reader: Callable[[], SQLiteStore] | None = None
        if settings.audit_dsn:
            reader = partial(PostgresStore, settings.audit_dsn)
        elif settings.audit_db:
            reader = partial(SQLiteStore, settings.audit_db)
        audit = None if reader is None else AuditWriter(
            reader(), settings.audit_queue, retention_days=settings.audit_retention_days,
            on_drop=security.audit_dropped.inc)
        return cls(Authenticator(keys, verifier, roles), quota, RequestGuard(thread_chars=settings.guard_thread_chars),
                   audit, security,
                   PrivacyPolicy(policy=settings.privacy_policy, store_text=settings.privacy_store_text), closers,
                   reader)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the audit writer; on the way out let token counts land, flush the audit queue, close clients."""
        async with AsyncExitStack() as stack:
            for closer in self._closers:
                stack.push_async_callback(closer.aclose)
            if self.audit is not None:
                await self.audit.start()
                stack.push_async_callback(self.audit.stop)
            stack.push_async_callback(self._settle)
            yield

    async def _settle(self) -> None:
        if self._spending:
            await asyncio.wait(self._spending, timeout=5.0)

    async def authenticate(self, authorization: str | None, request_id: str) -> Principal | None:
        """The caller; a refusal is counted and audited (no credential in either) before it is raised."""
        try:
            return await self.authenticator.authenticate(authorization)
        except APIError as error:
            self.metrics.refused.labels(str(error.status), error.code or "none").inc()
            if self.audit is not None:
                self.audit.submit(AuditRecord(request_id, None, None, None, None, None, error.status, None, None, 0.0))
            raise

    def begin(self, record: RequestRecord, caller: Principal | None) -> Gate:
        """The gate one request passes; its audit record is written when `record` closes."""
        return Gate(self, record, caller)

    async def query_audit(self, since: float, subject: str | None, expert: str | None,
                          status: int | None) -> list[dict[str, Any]]:
        """Audit records read through a connection of their own, in a worker thread; a 404 when there is no trail."""
        reader = self._audit_reader
        if reader is None:
            raise APIError(404, "No audit trail is configured (COE_AUDIT_DB or COE_AUDIT_DSN).", code="no_audit")

        def read() -> list[dict[str, Any]]:
            store = reader()
            store.open()
            try:
                return store.query(since, subject, expert, status)
            finally:
                store.close()

        return await anyio.to_thread.run_sync(read)

    def spend_later(self, caller: Principal, tokens: int) -> None:
        """Count real usage against the caller's token limits without holding up the answer."""
        scopes = [s for s in caller.scopes() if s.tokens_per_minute]
        if not scopes:
            return
        task = asyncio.get_running_loop().create_task(self.quota.spend_tokens(scopes, tokens))
        self._spending.add(task)
        task.add_done_callback(self._spending.discard)
