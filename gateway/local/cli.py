"""`coe up` and `coe models ...` (placeholder until the local-stack work lands)."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the local-stack subcommands."""
