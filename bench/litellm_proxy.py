"""LiteLLM's proxy from PyPI as the peer: its own virtualenv (its pins differ from vLLM's) and a config file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from bench.procs import ServerProcess, free_port

# 1.107.0 was a compromised release; newer ones want a `litellm-proxy` package that PyPI does not carry.
LITELLM_REQUIREMENT = "litellm[proxy]==1.106.12"
PEER_MODEL = "bench-peer"


class LiteLLMUnavailable(RuntimeError):
    """LiteLLM could not be installed or started here; the message says why."""


def ensure_litellm(venv: Path, say: Callable[[str], None], timeout_s: float = 900.0) -> Path:
    """The `litellm` console script in `venv`, creating the venv and installing LiteLLM when missing."""
    script = venv / "bin" / "litellm"
    if script.is_file():
        return script
    say(f"installing {LITELLM_REQUIREMENT} into {venv.name} (once)")
    try:
        if not (venv / "bin" / "python").is_file():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, capture_output=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", LITELLM_REQUIREMENT], check=True,
                       timeout=timeout_s, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or "").strip().splitlines()[-3:]
        raise LiteLLMUnavailable(f"pip install {LITELLM_REQUIREMENT} failed: {' | '.join(tail)}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LiteLLMUnavailable(f"installing {LITELLM_REQUIREMENT} took over {exc.timeout:.0f} s") from exc
    if not script.is_file():
        raise LiteLLMUnavailable(f"{LITELLM_REQUIREMENT} installed no `litellm` script")
    return script


def litellm_version(venv: Path) -> str:
    """The installed LiteLLM version, read by the venv's own interpreter."""
    try:
        return subprocess.run([str(venv / "bin" / "python"), "-c",
                               "from importlib.metadata import version; print(version('litellm'))"],
                              capture_output=True, text=True, timeout=60).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_config(path: Path, engine_url: str, upstream_model: str) -> Path:
    """A proxy config with one model that forwards to the engine as an OpenAI-compatible server."""
    config = {
        "model_list": [{"model_name": PEER_MODEL, "litellm_params": {
            "model": f"openai/{upstream_model}", "api_base": engine_url, "api_key": "none"}}],
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def litellm_server(script: Path, config: Path, log_dir: Path, master_key: str) -> ServerProcess:
    """The proxy, one worker, on loopback, with a master key (it refuses to start without); no database."""
    port = free_port()
    env = dict(os.environ)
    env.update({"LITELLM_MASTER_KEY": master_key, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR", "NO_DOCS": "True", "DISABLE_ADMIN_UI": "True"})
    command = [str(script), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
               "--num_workers", "1"]
    return ServerProcess("litellm", command, f"http://127.0.0.1:{port}/health/liveliness", log_dir, env=env)
