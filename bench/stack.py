"""The processes a benchmark measures: a fake engine, the gateway (`coe serve`) in front of it, router artifacts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from bench.procs import ServerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
ROUTER_DATA = ROOT / "router_model" / "data"
EXPERT = "bench"  # the one expert the gateway serves in the benchmarks
UPSTREAM_MODEL = "bench-upstream"


def fake_engine(log_dir: Path, tokens: int, gap_s: float, name: str = "fake-engine",
                cores: set[int] | None = None) -> ServerProcess:
    """The paced fake vLLM engine as its own process."""
    port = free_port()
    command = [sys.executable, "-m", "coe_testing.fake_engine", "--port", str(port), "--model", UPSTREAM_MODEL,
               "--tokens", str(tokens), "--gap-s", str(gap_s)]
    return ServerProcess(name, command, f"http://127.0.0.1:{port}/health", log_dir, cores=cores)


def base_url(server: ServerProcess) -> str:
    """The OpenAI base URL (`.../v1`) of a server started by this module."""
    parts = urlsplit(server.ready_url)
    return f"{parts.scheme}://{parts.netloc}/v1"


def categories_of(artifact: Path) -> list[str]:
    """The categories a router artifact predicts."""
    return list(json.loads((artifact / "meta.json").read_text())["categories"])


def write_registry(path: Path, engine_url: str, model: str, artifact: Path, expert: str = EXPERT) -> Path:
    """A registry with one expert that claims every category, so routed requests reach the same engine."""
    registry = {
        "fallback": expert,
        "router": {"artifact": str(artifact.resolve())},
        "experts": [{"name": expert, "url": engine_url, "model": model, "categories": categories_of(artifact),
                     "description": "benchmark target"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(registry), encoding="utf-8")
    return path


def gateway(log_dir: Path, registry: Path, name: str = "gateway", cores: set[int] | None = None,
            timeout_s: float = 180.0) -> ServerProcess:
    """`coe serve` as its own process, with uvicorn's access log off as in a production setting."""
    port = free_port()
    command = [sys.executable, "-m", "gateway", "serve", "--experts", str(registry), "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]
    return ServerProcess(name, command, f"http://127.0.0.1:{port}/ready", log_dir, cores=cores)


def default_artifact() -> Path:
    """Where the shipped router artifact lives."""
    return ROOT / "router_model" / "artifacts" / "default"


def train_artifact(out: Path, embedder: str, timeout_s: float = 600.0) -> Path:
    """Train a router on the project's own prompts (`coe router train`), reusing one already there."""
    if (out / "meta.json").is_file():
        return out
    command = [sys.executable, "-m", "gateway", "router", "train", "--data", str(ROUTER_DATA), "--out", str(out),
               "--embedder", embedder, "--quiet"]
    subprocess.run(command, check=True, timeout=timeout_s, capture_output=True)
    return out


def router_artifact(work_dir: Path) -> tuple[Path, str]:
    """The shipped artifact, else one trained here with the default embedder; and where it came from."""
    shipped = default_artifact()
    if (shipped / "meta.json").is_file():
        return shipped, "shipped default artifact"
    return train_artifact(work_dir / "router-minilm", "minilm"), "trained here on router_model/data (none shipped)"
