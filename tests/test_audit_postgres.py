"""The audit trail in a real PostgreSQL server started on loopback for the test."""

from __future__ import annotations

import anyio

from gateway.audit import AuditWriter, PostgresStore
from tests.test_audit import make_record


def test_postgres_store_writes_queries_and_prunes(postgres: str) -> None:
    async def go() -> None:
        writer = AuditWriter(PostgresStore(postgres), retention_days=30)
        await writer.start()
        writer.submit(make_record(1, ts=1.0))
        for i in range(2, 12):
            writer.submit(make_record(i, status=500 if i == 5 else 200))
        await writer.stop()
        assert writer.written == 11
    anyio.run(go)
    store = PostgresStore(postgres)
    store.open()
    assert len(store.query()) == 11 and [r["request_id"] for r in store.query(status=500)] == ["r5"]
    assert store.query(subject="alice")[0]["findings"] == {"EMAIL": 1}
    assert store.prune(2.0) == 1 and len(store.query()) == 10
    store.close()
