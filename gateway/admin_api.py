"""`/admin/*`: for admin roles or keys only; the audit trail, reload, expert state and the running config."""

from __future__ import annotations

import argparse
from typing import Any

from fastapi import APIRouter, Depends, Query

from gateway.admin_views import config_view, experts_view
from gateway.api import StateDep, require_admin
from gateway.audit_query import parse_since
from gateway.errors import APIError


def build_admin_api() -> APIRouter:
    """The admin routes; every one requires an admin caller (or authentication off)."""
    admin = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])

    @admin.get("/audit")
    async def audit(
        state: StateDep, since: str = "1h", subject: str | None = None, expert: str | None = None,
        status: int | None = None, limit: int = Query(default=1000, ge=1, le=100_000),
    ) -> dict[str, Any]:
        """Audit records, oldest first, the newest `limit` of them (`since`: 30m, 6h, 7d or an ISO time)."""
        try:
            start = parse_since(since)
        except argparse.ArgumentTypeError as exc:
            raise APIError(400, str(exc), param="since") from exc
        rows = await state.access.query_audit(start, subject, expert, status)
        return {"object": "list", "data": rows[-limit:]}

    @admin.post("/reload")
    async def reload(state: StateDep) -> dict[str, Any]:
        """Re-read the experts file, the router artifact and the key file; all valid, or nothing changes."""
        if state.reloader is None:
            raise APIError(503, "Reload is not available.", code="unavailable")
        return await state.reloader.reload()

    @admin.get("/experts")
    async def experts(state: StateDep) -> dict[str, Any]:
        """Each expert: breaker, requests in flight and queued, recent time to first token."""
        return experts_view(state)

    @admin.get("/config")
    async def config(state: StateDep) -> dict[str, Any]:
        """The running registry and settings (secrets redacted), the files' checksums and the load time."""
        return config_view(state)

    return admin
