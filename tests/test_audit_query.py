"""`coe audit query` over a real SQLite audit file, as JSON lines and CSV."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import anyio
import pytest

from gateway.audit import AuditWriter, SQLiteStore
from gateway.cli import main
from tests.test_audit import make_record


def fill(path: Path) -> None:
    async def go() -> None:
        writer = AuditWriter(SQLiteStore(path))
        await writer.start()
        writer.submit(make_record(1, ts=time.time() - 7200))
        writer.submit(make_record(2, subject="bob", status=403))
        writer.submit(make_record(3, expert="math"))
        await writer.stop()
    anyio.run(go)


def test_query_filters_and_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "audit.db"
    fill(db)
    assert main(["audit", "query", "--db", str(db), "--since", "1h"]) == 0
    ids = [json.loads(line)["request_id"] for line in capsys.readouterr().out.splitlines()]
    assert ids == ["r2", "r3"]
    main(["audit", "query", "--db", str(db), "--subject", "bob", "--status", "403"])
    assert [json.loads(line)["subject"] for line in capsys.readouterr().out.splitlines()] == ["bob"]
    main(["audit", "query", "--db", str(db), "--expert", "math", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["request_id"] for r in rows] == ["r3"] and json.loads(rows[0]["findings"]) == {"EMAIL": 1}
    assert main(["audit", "query", "--db", str(tmp_path / "none.db")]) == 2
