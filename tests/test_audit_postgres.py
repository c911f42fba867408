"""The audit trail in a real PostgreSQL server started on loopback for the test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from gateway.audit import AuditWriter, PostgresStore
from tests.test_audit import make_record

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def postgres() -> Iterator[str]:
    if not (PG_BIN / "initdb").is_file():
        pytest.skip("PostgreSQL 15 is not installed (make system-deps installs it)")
    # PostgreSQL refuses to run as root: run it as the `postgres` user in a folder it owns.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    # Not under pytest's tmp_path: its parents are private to root, and the server must reach its folder.
    holder = Path(tempfile.mkdtemp(prefix="coe-pg-"))
    data = holder / "pg"
    data.mkdir()
    if prefix:
        shutil.chown(holder, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    subprocess.run([*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", "coe", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"),
                    "-o", f"-p {port} -k {data} -h 127.0.0.1", "start"], check=True, capture_output=True)
    yield f"postgresql://coe@127.0.0.1:{port}/postgres"
    subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
    shutil.rmtree(holder, ignore_errors=True)


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
