"""A user's own label set: `coe router train` on a small three-category file, then the gateway routes with it."""

from __future__ import annotations

from pathlib import Path

import openai

from coe_testing.fake_engine import FakeEngine
from coe_testing.servers import ServerThread
from gateway.app import create_app
from gateway.cli import main
from gateway.registry import Registry
from tests.fixtures_gateway import make_settings


def test_gateway_routes_with_a_router_trained_on_the_users_labels(tiny_data: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    trained = main(["router", "train", "--data", str(tiny_data), "--out", str(artifact), "--embedder", "hashing",
                    "--classifier", "logreg", "--quiet"])
    assert trained == 0
    names = ("code", "legal", "medical", "general")
    engines = {name: ServerThread(FakeEngine(f"upstream-{name}"), lifespan="off").start() for name in names}
    registry = Registry.model_validate({
        "fallback": "general",
        "router": {"artifact": str(artifact), "min_confidence": 0.4},
        "experts": [
            {"name": name, "url": f"{server.url}/v1", "model": f"upstream-{name}",
             "categories": [] if name == "general" else [name]}
            for name, server in engines.items()
        ],
    })
    gateway = ServerThread(create_app(make_settings(), registry)).start()  # the default loader reads the artifact
    try:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
        for text, expert in [
            ("how do i reverse a list in python", "code"),
            ("can my landlord keep my deposit", "legal"),
            ("i feel dizzy when i stand up, should i see a doctor", "medical"),
        ]:
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": text}]
            )
            assert (raw.headers["x-coe-category"], raw.headers["x-coe-expert"]) == (expert, expert)
            assert raw.parse().model == expert
    finally:
        gateway.stop()
        for server in engines.values():
            server.stop()
