"""The `coe` command: `coe serve`, the router's commands, and the subcommands installed packages add."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

# Installed packages (the local stack, ...) add their subcommands here: `add_commands(subparsers)`.
COMMANDS_GROUP = "coe.commands"


def _serve(args: argparse.Namespace) -> int:
    from gateway.server import run_server
    from gateway.settings import settings_from_args

    return run_server(settings_from_args(args))


def _add_serve(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.settings import add_server_flags

    serve = subparsers.add_parser("serve", help="serve the gateway in front of already running experts")
    add_server_flags(serve)
    serve.add_argument("--workers", type=int, help="uvicorn worker processes (default 1; env COE_WORKERS)")
    serve.set_defaults(handler=_serve)


def _add_audit(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.audit_query import add_audit

    add_audit(subparsers)


def _hash_keys(args: argparse.Namespace) -> int:
    from gateway.auth import hash_key

    for line in sys.stdin:
        if line.strip():
            print(hash_key(line.strip()))
    return 0


def _add_keys(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = subparsers.add_parser("keys", help="API key helpers")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    hashing = actions.add_parser("hash", help="print the SHA-256 (for the keys file) of each key read from stdin")
    hashing.set_defaults(handler=_hash_keys)


def build_parser() -> argparse.ArgumentParser:
    """The full command tree: the gateway's own commands, then each installed package's."""
    from router_model.cli import add_commands as add_router_commands

    parser = argparse.ArgumentParser(prog="coe", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_serve(subparsers)
    _add_audit(subparsers)
    _add_keys(subparsers)
    add_router_commands(subparsers)
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        entry.load()(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `coe` console script."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
