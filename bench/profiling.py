"""Where a server's time goes under load: py-spy samples its stacks; the report lists the heaviest frames."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.report import Table

# Threads parked in these are waiting, not working (py-spy's idle filter does not always catch them).
WAITING = ("Condition.wait (threading.py)", "Event.wait (threading.py)", "Queue.get (queue.py)",
           "_worker (thread.py)", "select (selectors.py)", "QueueListener.dequeue (logging/handlers.py)")


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def start_sampling(pid: int, duration_s: int, out: Path) -> subprocess.Popen[bytes] | None:
    """Sample `pid` for `duration_s` into collapsed stacks at `out`; None when py-spy is not installed."""
    executable = py_spy()
    if executable is None:
        return None
    command = [executable, "record", "--pid", str(pid), "--duration", str(duration_s), "--rate", "250",
               "--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame_name(frame: str) -> str:
    # py-spy writes frames as "function (path/to/module.py:line)"; keep the function and the file's tail.
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0]
    parts = Path(file).parts
    tail = "/".join(parts[-2:]) if parts else file
    return f"{name} ({tail})"


def hot_frames(collapsed: Path, top: int = 8) -> tuple[Table, int]:
    """The frames most often on top of the stack (self), then the gateway's own frames by inclusive share."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if frames and frames[-1] in WAITING:
            continue
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    table = Table(["frame", "kind", "share of busy samples"])
    for frame, count in own.most_common(top):
        table.rows.append([f"`{frame}`", "self", f"{100 * count / max(total, 1):.1f}%"])
    ours = [(f, c) for f, c in inclusive.most_common() if "(gateway/" in f and "gateway/cli.py" not in f
            and "gateway/server.py" not in f and "gateway/__main__.py" not in f]
    for frame, count in ours[:top]:
        table.rows.append([f"`{frame}`", "inclusive", f"{100 * count / max(total, 1):.1f}%"])
    return table, total
