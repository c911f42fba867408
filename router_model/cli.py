"""`coe router ...` (placeholder until the router work lands)."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the router subcommands."""
