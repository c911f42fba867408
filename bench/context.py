"""What every mode gets: the run's size, a working folder, a logger, and the router artifact (made once)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import BenchConfig
from bench.plot import Curves
from bench.stack import ROOT, router_artifact


def say(message: str) -> None:
    """Progress lines go to stderr, so stdout stays free for the report path."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class BenchContext:
    """Shared by the modes of one run."""

    config: BenchConfig
    work_dir: Path
    root: Path = ROOT
    versions: dict[str, str] = field(default_factory=dict)
    curves: Curves = field(default_factory=Curves)  # for the report's picture, filled by the modes
    _artifact: tuple[Path, str] | None = None

    @property
    def log_dir(self) -> Path:
        """Where the servers' logs go."""
        return self.work_dir / "logs"

    def say(self, message: str) -> None:
        """A progress line."""
        say(message)

    def artifact(self) -> tuple[Path, str]:
        """The router artifact the gateway loads, and where it came from."""
        if self._artifact is None:
            self.say("router artifact: looking for the shipped one, else training one (about 30 s)")
            self._artifact = router_artifact(self.work_dir)
        return self._artifact
