"""The benchmark modes; each takes the run's context and returns its report section."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from bench.context import BenchContext
from bench.report import Section

MODES = ("overhead", "capacity", "routing", "memory", "peer", "real")


def mode_runner(name: str) -> Callable[[BenchContext], Section]:
    """The `run` function of a mode, imported only when the mode is chosen."""
    if name not in MODES:
        raise ValueError(f"unknown mode {name!r}; known: {', '.join(MODES)}")
    runner: Callable[[BenchContext], Section] = import_module(f"bench.modes.{name}").run
    return runner
