"""Servers under test as child processes: started with logs to files, optionally pinned, timed, always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.loopback import require_loopback

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def process_tree(pid: int) -> list[int]:
    """The pid and all its descendants (a proxy may run its server in worker processes)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += _children(current)
    return tree


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process and its live descendants, from /proc."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


TIME_WAIT = "06"


def time_wait_sockets(remote_port: int) -> set[str]:
    """Local ends of sockets in TIME_WAIT towards `remote_port` (/proc/net/tcp*): connections this side closed.

    A set, not a count: entries expire after a minute, so only ends absent before a load count as new.
    """
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == TIME_WAIT and int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
                found.add(fields[1])
    return found


class ServerProcess:
    """One server command, its log file, and the URL that says it is ready."""

    def __init__(self, name: str, command: Sequence[str], ready_url: str, log_dir: Path,
                 env: dict[str, str] | None = None, cores: set[int] | None = None) -> None:
        self.name = name
        self.command = list(command)
        self.ready_url = require_loopback(ready_url)
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.cores = cores
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The server's pid (it must be running)."""
        assert self.process is not None, f"{self.name} is not started"
        return self.process.pid

    def start(self, timeout_s: float = 120.0) -> ServerProcess:
        """Start and wait until `ready_url` answers 200; raise with the log's tail if it never does."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cores = self.cores

        def pin() -> None:
            # Set before exec, so every thread the server later starts inherits the same cores.
            if cores:
                os.sched_setaffinity(0, cores)

        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            preexec_fn=pin, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
                try:
                    if client.get(self.ready_url).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f} s: {self.log_tail()}")

    def cpu_seconds(self) -> float:
        """CPU time the server (with its children) has used so far."""
        return cpu_seconds(self.pid)

    def log_tail(self, lines: int = 8) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the server's process group, SIGKILL it after the grace period."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(grace_s)
        except ProcessLookupError:
            pass

    def __enter__(self) -> ServerProcess:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
