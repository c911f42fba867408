"""SIGTERM loses no queued audit record: a real uvicorn process whose lifespan owns the writer."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.audit import SQLiteStore

# A slow store makes records pile up in the queue, so the flush on shutdown has real work to do.
APP = """
import sys, time
from contextlib import asynccontextmanager
from pathlib import Path
import uvicorn
from fastapi import FastAPI
from gateway.audit import AuditRecord, AuditWriter, SQLiteStore

class SlowStore(SQLiteStore):
    def write(self, records):
        time.sleep(0.05)
        super().write(records)

writer = AuditWriter(SlowStore(Path(sys.argv[1])), batch=5)

@asynccontextmanager
async def lifespan(app):
    await writer.start()
    yield
    await writer.stop()

app = FastAPI(lifespan=lifespan)

@app.post("/r/{i}")
async def r(i: int):
    writer.submit(AuditRecord(f"r{i}", "alice", "analyst", "code", "code", "classified", 200, 1, 1, 1.0))
    return {"ok": True}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def test_sigterm_flushes_the_queue(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", APP, str(db), str(port)])
    try:
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                try:
                    client.post("/r/0")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and proc.poll() is None
                    time.sleep(0.1)
            for i in range(1, 200):
                client.post(f"/r/{i}").raise_for_status()
        proc.send_signal(signal.SIGTERM)
        # uvicorn runs the lifespan's shutdown, then re-raises the signal it caught.
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = SQLiteStore(db)
    store.open()
    ids = {r["request_id"] for r in store.query()}
    store.close()
    assert ids == {f"r{i}" for i in range(200)}
