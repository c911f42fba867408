"""A registry's local engines, prepared and running for the length of a block (used by `coe up` and tests)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from coe_local.engines import LOOPBACK, plan_engines, required_ids
from coe_local.models import Say
from coe_local.prepare import prepare_models, say_to_stderr
from coe_local.supervisor import DEFAULT_START_TIMEOUT_S, EngineSupervisor, running_engines, vllm_engines
from gateway.registry import Registry


@contextmanager
def registry_engines(
    registry: Registry,
    cache_dir: Path,
    log_dir: Path,
    say: Say = say_to_stderr,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> Iterator[EngineSupervisor]:
    """Prepare what the registry's launch specs need, start their engines, stop them after the block."""
    plans = plan_engines(registry)
    model_ids, adapter_ids = required_ids(plans)
    prepared = prepare_models(cache_dir, model_ids, adapter_ids, say)
    with running_engines(vllm_engines(plans, prepared, log_dir), say, timeout_s) as supervisor:
        yield supervisor


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def with_free_ports(registry: Registry) -> Registry:
    """A copy of the registry with its launched engines (and URLs) on free ports, so runs do not collide."""
    moved = registry.model_copy(deep=True)
    new_ports: dict[int, int] = {}
    for expert in moved.experts:
        if expert.launch is None or expert.url is None:
            continue
        port = new_ports.setdefault(int(expert.launch["port"]), free_port())
        parts = urlsplit(expert.url)
        expert.url = parts._replace(netloc=f"{parts.hostname}:{port}").geturl()
        expert.launch["port"] = port
    return moved
