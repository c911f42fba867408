"""The shipped Prometheus configs: valid for promtool, and scraping the gateway and every compose engine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gateway.registry import load_registry
from tests.deploy_files import COMPOSE_EXPERTS, REPO_ROOT, compose, url_host_port

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
CONFIGS = ["prometheus.yml", "prometheus-cpu.yml"]


def scrape_targets(path: Path) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Each job's static targets with their extra labels."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {
        job["job_name"]: [
            (target, group.get("labels", {}))
            for group in job["static_configs"]
            for target in group["targets"]
        ]
        for job in config["scrape_configs"]
    }


@pytest.mark.prometheus
@pytest.mark.parametrize("name", CONFIGS)
def test_promtool_accepts_the_config(name: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: install Debian's prometheus package (make system-deps)")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_DIR / name)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", CONFIGS)
def test_gateway_is_scraped_on_its_port(name: str) -> None:
    assert [target for target, _ in scrape_targets(PROMETHEUS_DIR / name)["coe-gateway"]] == ["gateway:8080"]


def test_every_gpu_expert_engine_is_scraped_with_its_expert_label() -> None:
    registry = load_registry(COMPOSE_EXPERTS)
    wanted = {
        "{}:{}".format(*url_host_port(replica.url)): expert.name
        for expert in registry.experts for replica in expert.replicas
    }
    targets = scrape_targets(PROMETHEUS_DIR / "prometheus.yml")["vllm"]
    scraped = {target: labels["expert"] for target, labels in targets}
    assert scraped == wanted


def test_cpu_engine_is_scraped_once() -> None:
    scraped = scrape_targets(PROMETHEUS_DIR / "prometheus-cpu.yml")["vllm"]
    assert [target for target, _ in scraped] == ["cpu-engine:8000"]


@pytest.mark.parametrize(
    ("service", "name"), [("prometheus", "prometheus.yml"), ("prometheus-cpu", "prometheus-cpu.yml")]
)
def test_compose_runs_each_config(service: str, name: str) -> None:
    spec = compose()["services"][service]
    assert "./deploy/prometheus:/etc/prometheus:ro" in spec["volumes"]
    assert f"--config.file=/etc/prometheus/{name}" in spec["command"]
