"""The audit writer: off the request path, bounded, flushed on stop, with retention, into a real SQLite file."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio

from gateway.audit import AuditRecord, AuditWriter, SQLiteStore


def make_record(i: int, **kw: object) -> AuditRecord:
    base: dict[str, object] = {"request_id": f"r{i}", "subject": "alice", "role": "analyst", "expert": "code",
                               "category": "code", "reason": "classified", "status": 200, "prompt_tokens": 10,
                               "completion_tokens": 5, "latency_ms": 12.5, "findings": {"EMAIL": 1}}
    return AuditRecord(**{**base, **kw})  # type: ignore[arg-type]


def test_records_are_written_and_queried(tmp_path: Path) -> None:
    async def go() -> None:
        writer = AuditWriter(SQLiteStore(tmp_path / "audit.db"))
        await writer.start()
        for i in range(50):
            writer.submit(make_record(i, status=200 if i % 5 else 429, expert="math" if i == 7 else "code"))
        await writer.stop()
        assert writer.written == 50 and writer.dropped == 0
    anyio.run(go)
    store = SQLiteStore(tmp_path / "audit.db")
    store.open()
    rows = store.query()
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in range(50)]
    assert rows[0]["findings"] == {"EMAIL": 1} and rows[0]["prompt_text"] is None
    assert len(store.query(status=429)) == 10 and [r["request_id"] for r in store.query(expert="math")] == ["r7"]
    assert store.query(subject="bob") == []


def test_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    async def go() -> None:
        writer = AuditWriter(SQLiteStore(tmp_path / "audit.db"), max_queue=5)
        await writer.start()
        began = time.perf_counter()
        for i in range(20):
            writer.submit(make_record(i))  # no await between: the drain task cannot run
        assert time.perf_counter() - began < 0.05
        assert writer.dropped == 15
        await writer.stop()
        assert writer.written == 5
    anyio.run(go)


def test_retention_prunes_old_records(tmp_path: Path) -> None:
    async def go(retention: float | None, records: list[AuditRecord]) -> None:
        writer = AuditWriter(SQLiteStore(tmp_path / "audit.db"), retention_days=retention)
        await writer.start()
        for r in records:
            writer.submit(r)
        await writer.stop()
    anyio.run(go, None, [make_record(1, ts=time.time() - 40 * 86400), make_record(2)])
    anyio.run(go, 30.0, [])
    store = SQLiteStore(tmp_path / "audit.db")
    store.open()
    assert [r["request_id"] for r in store.query()] == ["r2"]


class FlakyStore(SQLiteStore):
    """A real SQLite store whose first `failures` writes fail, as a locked or restarting database would."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    def write(self, records: list[AuditRecord]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        super().write(records)


def test_failed_writes_are_retried_then_counted(tmp_path: Path) -> None:
    async def go(failures: int) -> AuditWriter:
        writer = AuditWriter(FlakyStore(tmp_path / f"audit{failures}.db", failures), attempts=3, retry_s=0.01)
        await writer.start()
        for i in range(5):
            writer.submit(make_record(i))
        await anyio.sleep(0.2)
        await writer.stop()
        return writer
    recovered = anyio.run(go, 2)  # two failures, the third attempt succeeds
    assert recovered.written == 5 and recovered.dropped == 0
    broken = anyio.run(go, 1000)
    assert broken.written == 0 and broken.dropped == 5
