"""The deployment files as data: docker-compose.yml with its defaults filled in, Dockerfiles, engine flags."""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
COMPOSE_EXPERTS = REPO_ROOT / "deploy" / "compose" / "experts.yaml"
CPU_DOCKERFILE = REPO_ROOT / "deploy" / "cpu" / "Dockerfile"
GATEWAY_DOCKERFILE = REPO_ROOT / "Dockerfile"
CATEGORIES = ("code", "math", "medical", "legal", "finance", "science", "general", "multilingual")

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Fill `${VAR:-default}` as compose does with nothing set; `${VAR:?message}` becomes 'REQUIRED'."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) == "-" else "REQUIRED", value)
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    return value


@functools.cache
def compose_raw() -> dict[str, Any]:
    """docker-compose.yml as written (YAML anchors and merge keys resolved by the loader)."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@functools.cache
def compose() -> dict[str, Any]:
    """docker-compose.yml with every variable at its default."""
    return interpolate(compose_raw())


def services_in_profile(profile: str) -> dict[str, dict[str, Any]]:
    """Services of one compose profile, by name."""
    return {name: spec for name, spec in compose()["services"].items() if profile in spec.get("profiles", [])}


def gpu_engines() -> dict[str, dict[str, Any]]:
    """The GPU profile's vLLM engine services."""
    return {
        name: spec
        for name, spec in services_in_profile("gpu").items()
        if spec.get("image", "").startswith("vllm/vllm-openai:") and "deploy" in spec
    }


def compose_env() -> dict[str, str]:
    """An environment in which the compose file's required variables are set."""
    return {**os.environ, "GRAFANA_ADMIN_PASSWORD": "test-only-password"}


def engine_flags(command: list[str]) -> dict[str, list[str]]:
    """Each `--flag=value` or `--flag value...` argument with its values (bare flags map to [])."""
    flags: dict[str, list[str]] = {}
    current: list[str] | None = None
    for arg in command:
        if arg.startswith("--"):
            key, _, value = arg.partition("=")
            current = flags.setdefault(key, [])
            if value:
                current.append(value)
        elif current is not None:
            current.append(arg)
    return flags


def dockerfile_instruction(path: Path, name: str) -> list[str]:
    """The exec-form (JSON array) arguments of the last `name` instruction of a Dockerfile."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    prefix = name.upper() + " "
    lines = [line.strip() for line in text.splitlines() if line.strip().upper().startswith(prefix)]
    if not lines:
        raise ValueError(f"{path}: no {name} instruction")
    value = json.loads(lines[-1][len(name) :].strip())
    assert isinstance(value, list), f"{path}: {name} is not in exec form"
    return [str(item) for item in value]


def url_host_port(url: str) -> tuple[str, int]:
    """Host and port of an expert URL (port defaulted by scheme)."""
    parts = urlsplit(url)
    assert parts.hostname is not None, url
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
