"""`coe audit query`: print or export audit records as JSON lines or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path

from gateway.audit import PostgresStore, SQLiteStore

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_since(value: str) -> float:
    """`90s`, `30m`, `6h`, `7d` ago, or an ISO-8601 time, as epoch seconds."""
    ago = _AGO.match(value)
    if ago:
        return time.time() - float(ago.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[ago.group(2)]
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a duration (30m, 6h, 7d) or ISO time: {value!r}") from exc


def add_audit(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`coe audit query [--db F | --dsn D] --since --subject --expert --status [--format jsonl|csv]`."""
    audit = subparsers.add_parser("audit", help="the audit trail")
    commands = audit.add_subparsers(dest="audit_command", required=True)
    query = commands.add_parser("query", help="print audit records (JSON lines or CSV)")
    query.add_argument("--db", type=Path, default=Path(os.environ.get("COE_AUDIT_DB", "coe-audit.db")),
                       help="the SQLite audit file (env COE_AUDIT_DB)")
    query.add_argument("--dsn", default=os.environ.get("COE_AUDIT_DSN"),
                       help="a PostgreSQL DSN instead of --db (env COE_AUDIT_DSN)")
    query.add_argument("--since", type=parse_since, default=0.0, help="30m, 6h, 7d, or an ISO time")
    query.add_argument("--subject")
    query.add_argument("--expert")
    query.add_argument("--status", type=int)
    query.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    query.set_defaults(handler=run_query)


def run_query(args: argparse.Namespace) -> int:
    store: SQLiteStore
    if args.dsn:
        store = PostgresStore(args.dsn)
    elif args.db.is_file():
        store = SQLiteStore(args.db)
    else:
        print(f"{args.db}: no audit file", file=sys.stderr)
        return 2
    try:
        store.open()
    except Exception as exc:  # the database is unreachable or refuses us: say so, no traceback
        print(f"coe: cannot open the audit store: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    try:
        rows = store.query(args.since, args.subject, args.expert, args.status)
    finally:
        store.close()
    if args.format == "jsonl":
        for row in rows:
            print(json.dumps(row, separators=(",", ":"), ensure_ascii=False))
    else:
        writer = csv.writer(sys.stdout)
        if rows:
            writer.writerow(rows[0].keys())
        for row in rows:
            writer.writerow([json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in row.values()])
    return 0
