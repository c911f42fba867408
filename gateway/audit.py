"""The audit trail: one record per request, written off the request path through a bounded queue into SQLite."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

log = logging.getLogger(__name__)

_COLUMNS = ("ts", "request_id", "subject", "role", "expert", "category", "reason", "status", "prompt_tokens",
            "completion_tokens", "latency_ms", "findings", "prompt_text", "answer_text")


@dataclass
class AuditRecord:
    """What an auditor sees of one request; text only when the role's policy keeps it."""

    request_id: str
    subject: str | None
    role: str | None
    expert: str | None
    category: str | None
    reason: str | None
    status: int
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float
    findings: dict[str, int] = field(default_factory=dict)  # kinds and counts, never values
    prompt_text: str | None = None
    answer_text: str | None = None
    ts: float = field(default_factory=time.time)

    def row(self) -> tuple[Any, ...]:
        values = asdict(self)
        values["findings"] = json.dumps(self.findings, sort_keys=True)
        return tuple(values[c] for c in _COLUMNS)


class SQLiteStore:
    """The default store: one file, written from a worker thread."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        self._db = sqlite3.connect(self._path, check_same_thread=False)
        self._db.execute(f"CREATE TABLE IF NOT EXISTS audit ({', '.join(_COLUMNS)})")
        self._db.execute("CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts)")
        self._db.commit()

    def write(self, records: list[AuditRecord]) -> None:
        assert self._db is not None
        marks = ", ".join("?" for _ in _COLUMNS)
        self._db.executemany(f"INSERT INTO audit VALUES ({marks})", [r.row() for r in records])
        self._db.commit()

    def prune(self, older_than: float) -> int:
        """Retention: delete records before `older_than` (epoch seconds)."""
        assert self._db is not None
        deleted = self._db.execute("DELETE FROM audit WHERE ts < ?", (older_than,)).rowcount
        self._db.commit()
        return deleted

    def query(self, since: float = 0.0, subject: str | None = None, expert: str | None = None,
              status: int | None = None) -> list[dict[str, Any]]:
        assert self._db is not None
        sql = "SELECT * FROM audit WHERE ts >= ?"
        args: list[Any] = [since]
        for column, value in (("subject", subject), ("expert", expert), ("status", status)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        rows = self._db.execute(sql + " ORDER BY ts", args).fetchall()
        return [dict(zip(_COLUMNS, r, strict=True)) | {"findings": json.loads(r[11])} for r in rows]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class PostgresStore(SQLiteStore):
    """The same table in PostgreSQL (`psycopg` 3), for several replicas writing one trail."""

    def __init__(self, dsn: str) -> None:
        super().__init__(Path())
        self._dsn = dsn
        self._pg: Any = None

    def open(self) -> None:
        import psycopg

        self._pg = psycopg.connect(self._dsn, autocommit=True)
        types = {"ts": "DOUBLE PRECISION", "status": "INTEGER", "prompt_tokens": "INTEGER",
                 "completion_tokens": "INTEGER", "latency_ms": "DOUBLE PRECISION"}
        columns = ", ".join(f"{c} {types.get(c, 'TEXT')}" for c in _COLUMNS)
        self._pg.execute(f"CREATE TABLE IF NOT EXISTS audit ({columns})")
        self._pg.execute("CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts)")

    def write(self, records: list[AuditRecord]) -> None:
        marks = ", ".join("%s" for _ in _COLUMNS)
        with self._pg.cursor() as cur:
            cur.executemany(f"INSERT INTO audit VALUES ({marks})", [r.row() for r in records])

    def prune(self, older_than: float) -> int:
        return int(self._pg.execute("DELETE FROM audit WHERE ts < %s", (older_than,)).rowcount)

    def query(self, since: float = 0.0, subject: str | None = None, expert: str | None = None,
              status: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM audit WHERE ts >= %s"
        args: list[Any] = [since]
        for column, value in (("subject", subject), ("expert", expert), ("status", status)):
            if value is not None:
                sql += f" AND {column} = %s"
                args.append(value)
        rows = self._pg.execute(sql + " ORDER BY ts", args).fetchall()
        return [dict(zip(_COLUMNS, r, strict=True)) | {"findings": json.loads(r[11])} for r in rows]

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None


class AuditWriter:
    """`submit` never blocks: a full queue drops the record, counts and logs it; `stop` flushes what is queued.

    A failing write is retried `attempts` times, `retry_s` apart, before its records are counted as dropped.
    """

    def __init__(self, store: SQLiteStore | PostgresStore, max_queue: int = 10_000, batch: int = 200,
                 retention_days: float | None = None, on_drop: Callable[[], None] | None = None,
                 attempts: int = 3, retry_s: float = 1.0) -> None:
        self._store = store
        self._attempts = attempts
        self._retry_s = retry_s
        self._on_drop = on_drop
        self._queue: asyncio.Queue[AuditRecord] = asyncio.Queue(max_queue)
        self._batch = batch
        self._retention_s = retention_days * 86400 if retention_days else None
        self._task: asyncio.Task[None] | None = None
        self._pending: list[AuditRecord] = []
        self.dropped = 0
        self.written = 0

    def submit(self, record: AuditRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            log.warning("audit queue full: record %s dropped (%d so far)", record.request_id, self.dropped)

    async def start(self) -> None:
        await anyio.to_thread.run_sync(self._store.open)
        if self._retention_s:
            await anyio.to_thread.run_sync(self._store.prune, time.time() - self._retention_s)
        self._task = asyncio.create_task(self._drain_forever())

    def _write(self, records: list[AuditRecord]) -> None:
        """In a worker thread: write, then mark the batch done (so a cancelled drain task never writes it twice)."""
        self._store.write(records)
        self.written += len(records)
        records.clear()

    async def _flush(self, records: list[AuditRecord]) -> None:
        while not self._queue.empty() and len(records) < self._batch:
            records.append(self._queue.get_nowait())
        if records:
            await anyio.to_thread.run_sync(self._write, records)

    def _lost(self, records: list[AuditRecord]) -> None:
        self.dropped += len(records)
        if self._on_drop is not None:
            for _ in records:
                self._on_drop()
        log.exception("audit write failed; %d records lost", len(records))

    async def _drain_forever(self) -> None:
        while True:
            batch = self._pending = [await self._queue.get()]
            # A database that is briefly locked or restarting should not cost records: retry the batch a few times.
            for attempt in range(self._attempts):
                try:
                    await self._flush(batch)
                    break
                except Exception:
                    if attempt == self._attempts - 1:
                        self._lost(batch)
                        batch.clear()
                    else:
                        log.warning("audit write failed; retrying %d records", len(batch))
                    await asyncio.sleep(self._retry_s)

    async def stop(self) -> None:
        """Stop the drain task, then write everything still queued (SIGTERM loses nothing queued)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._pending:  # the batch the drain task held when it was stopped (between retries)
            try:
                await self._flush(self._pending)
            except Exception:
                self._lost(self._pending)
        while not self._queue.empty():
            batch: list[AuditRecord] = []
            try:
                await self._flush(batch)
            except Exception:
                self._lost(batch)
        await anyio.to_thread.run_sync(self._store.close)
