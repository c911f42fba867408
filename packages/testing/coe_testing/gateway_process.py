"""`python -m coe_testing.gateway_process --experts F --port P`: the real server loop with the keyword router."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coe_testing.routers import KeywordRouter
from gateway.app import create_app
from gateway.registry import load_registry
from gateway.server import configure_logging, serve_app
from gateway.settings import Settings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experts", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--grace", type=float, default=10.0)
    args = parser.parse_args()
    settings = Settings(experts=args.experts, port=args.port, shutdown_grace_s=args.grace, log_level="warning")
    configure_logging(settings)
    app = create_app(settings, load_registry(args.experts), router_loader=lambda _: KeywordRouter())
    return serve_app(app, settings)


if __name__ == "__main__":
    sys.exit(main())
