"""The local profile's real vLLM engines, started once per test run, and a fake engine for unit tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gateway.registry import Registry, load_registry

LOCAL_PROFILE = Path(__file__).resolve().parent.parent / "deploy" / "local" / "experts.yaml"
ENGINE_START_TIMEOUT_S = 900.0

# A stand-in for an engine: prints like one, answers /v1/models with the given names after a delay.
FAKE_ENGINE_SCRIPT = """
import http.server, json, sys, time
port, names, delay = int(sys.argv[1]), sys.argv[2].split(","), float(sys.argv[3])
print("fake engine loading", flush=True)
time.sleep(delay)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": n, "object": "model"} for n in names]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("fake engine ready", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def fake_engine_command(port: int, names: list[str], delay_s: float = 0.0) -> list[str]:
    """The command line of a fake engine serving `names` on `port` after `delay_s`."""
    return [sys.executable, "-c", FAKE_ENGINE_SCRIPT, str(port), ",".join(names), str(delay_s)]


def is_alive(pid: int) -> bool:
    """Whether the pid runs (a zombie left for a reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class LocalEngines:
    """The running local profile: its registry (on free ports), the registry file, each expert's URL."""

    registry: Registry
    registry_path: Path
    base_urls: dict[str, str]


@pytest.fixture(scope="session")
def local_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngines]:
    """Prepare the local models (cached across runs) and start the profile's vLLM engines once per session.

    Tests using it must be marked `vllm`. The engines listen on free ports, not the profile's own, so a
    `make run` beside the tests does not collide.
    """
    from coe_local.models import default_cache_dir
    from coe_local.stack import registry_engines, with_free_ports

    run_dir = tmp_path_factory.mktemp("local-engines")
    registry = with_free_ports(load_registry(LOCAL_PROFILE))
    registry_path = run_dir / "experts.yaml"
    registry_path.write_text(
        yaml.safe_dump(registry.model_dump(mode="json", exclude_none=True)), encoding="utf-8"
    )
    registry = load_registry(registry_path)
    with registry_engines(registry, default_cache_dir(), run_dir / "logs", timeout_s=ENGINE_START_TIMEOUT_S):
        yield LocalEngines(
            registry=registry,
            registry_path=registry_path,
            base_urls={e.name: e.base_url for e in registry.experts if e.launch is not None},
        )
