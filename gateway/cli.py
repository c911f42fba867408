"""The `coe` command: serve the gateway, run the local stack, train and evaluate the router."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _add_serve(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    serve = subparsers.add_parser("serve", help="serve the gateway in front of already running experts")
    serve.add_argument("--experts", type=Path, help="expert registry file (YAML or JSON); env COE_EXPERTS")
    serve.add_argument("--host", help="bind address (default 127.0.0.1; env COE_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8080; env COE_PORT)")
    serve.add_argument("--log-level", help="uvicorn log level (env COE_LOG_LEVEL)")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes (default 1; env COE_WORKERS)")
    serve.set_defaults(handler=_serve)


def settings_from_args(args: argparse.Namespace):
    """Settings from the environment, overridden by the flags the user gave."""
    from gateway.settings import Settings

    overrides = {
        key: value
        for key in ("experts", "host", "port", "log_level", "workers")
        if (value := getattr(args, key, None)) is not None
    }
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    from gateway.server import run_server

    return run_server(settings_from_args(args))


def build_parser() -> argparse.ArgumentParser:
    """The full command tree; each area registers its own subcommands."""
    from gateway.local.cli import add_commands as add_local_commands
    from router_model.cli import add_commands as add_router_commands

    parser = argparse.ArgumentParser(prog="coe", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_serve(subparsers)
    add_local_commands(subparsers)
    add_router_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `coe` console script."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
