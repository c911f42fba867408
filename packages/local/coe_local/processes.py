"""One engine child process: its own process group, its log file, dies with its parent, stopped as a group."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _child_setup(parent_pid: int) -> Callable[[], None]:
    """Run in the child before exec: a new process group, and SIGTERM when the parent dies (Linux)."""

    def setup() -> None:
        os.setsid()
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            # The parent may have died between fork and prctl; then nobody would ever signal us.
            if os.getppid() != parent_pid:
                os._exit(1)

    return setup


class ChildProcess:
    """A command run in its own process group with stdout and stderr in a log file."""

    def __init__(self, command: list[str], env: dict[str, str], log_file: Path) -> None:
        self.command = command
        self.env = env
        self.log_file = log_file
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid (also its process group id), once started."""
        return self._popen.pid if self._popen else None

    def start(self) -> None:
        """Start the child from a thread that outlives it (the death signal follows the starting thread)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("wb") as log:
            self._popen = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup(os.getpid()),
            )

    def returncode(self) -> int | None:
        """The exit status once the child has exited, else None."""
        return self._popen.poll() if self._popen else None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the child's log."""
        try:
            with self.log_file.open("r", encoding="utf-8", errors="replace") as handle:
                return "".join(deque(handle, maxlen=lines))
        except OSError:
            return ""

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after `grace_s`; grandchildren included."""
        if self._popen is None:
            return
        pgid = self._popen.pid
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_alive(pgid):
            self._popen.poll()
            time.sleep(0.2)
        _signal_group(pgid, signal.SIGKILL)
        self._popen.wait()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is still there (signal 0 probes without sending)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
