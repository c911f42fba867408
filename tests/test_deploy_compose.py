"""docker-compose.yml: valid for docker-compose, and consistent with its experts file and its images."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from coe_local.adapters import adapter_dir
from coe_local.engines import plan_engines
from coe_local.models import model_dir
from gateway.registry import load_registry
from tests.deploy_files import (
    CATEGORIES,
    COMPOSE_EXPERTS,
    CPU_DOCKERFILE,
    GATEWAY_DOCKERFILE,
    REPO_ROOT,
    compose,
    compose_env,
    compose_raw,
    dockerfile_instruction,
    engine_flags,
    gpu_engines,
    services_in_profile,
    url_host_port,
)

GATEWAY_COMMAND = ["serve", "--experts", "/etc/coe/experts.yaml", "--host", "0.0.0.0", "--port", "8080"]
PUBLISHING_SERVICES = {"gateway", "gateway-cpu", "grafana", "prometheus", "prometheus-cpu"}


def gpu_device_id(engine: dict[str, Any]) -> str:
    """The one GPU id an engine reserves."""
    (device,) = engine["deploy"]["resources"]["reservations"]["devices"]
    (device_id,) = device["device_ids"]
    return str(device_id)


def docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.skip("docker-compose not found: install Debian's docker-compose package (make system-deps)")
    return path


def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        [docker_compose(), "--project-directory", str(REPO_ROOT), "-f", str(REPO_ROOT / "docker-compose.yml"),
         "config", "-q"],
        capture_output=True, text=True, env=compose_env(), timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_resolves_the_same_services_we_read() -> None:
    result = subprocess.run(
        [docker_compose(), "-f", str(REPO_ROOT / "docker-compose.yml"), "config"],
        capture_output=True, text=True, env=compose_env(), timeout=60,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert set(resolved) == set(compose()["services"])
    for name, engine in gpu_engines().items():
        assert resolved[name]["command"] == engine["command"]
        assert resolved[name]["deploy"] == engine["deploy"]


def test_grafana_password_is_required_from_the_environment() -> None:
    result = subprocess.run(
        [docker_compose(), "-f", str(REPO_ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, timeout=60,
        env={key: value for key, value in compose_env().items() if key != "GRAFANA_ADMIN_PASSWORD"},
    )
    assert result.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in result.stderr
    password = compose_raw()["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?")


def test_experts_file_covers_every_category() -> None:
    registry = load_registry(COMPOSE_EXPERTS)
    claimed = {category for expert in registry.experts for category in expert.categories}
    assert set(CATEGORIES) <= claimed
    assert len(registry.experts) >= 5


def test_each_expert_has_its_gpu_engine() -> None:
    registry = load_registry(COMPOSE_EXPERTS)
    engines = gpu_engines()
    by_host = {}
    for expert in registry.experts:
        for replica in expert.replicas:
            host, port = url_host_port(replica.url)
            assert host in engines, f"expert {expert.name}: no GPU engine service {host}"
            flags = engine_flags(engines[host]["command"])
            assert flags["--served-model-name"] == [expert.name] == [expert.model]
            assert flags["--port"] == [str(port)]
            assert replica.url.endswith("/v1")
            by_host[host] = expert.name
    assert set(by_host) == set(engines), "a GPU engine serves no expert"
    assert sorted(by_host.values()).count("general") == 2  # one expert shows replicas


@pytest.mark.parametrize("name", sorted(gpu_engines()))
def test_gpu_engine_is_complete(name: str) -> None:
    engine = gpu_engines()[name]
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", engine["image"]), "pin the vLLM image tag"
    assert engine["ipc"] == "host"
    assert any(v.endswith(":/root/.cache/huggingface") for v in engine["volumes"]), "mount the HF cache"
    flags = engine_flags(engine["command"])
    assert "/" in flags["--model"][0]
    assert int(flags["--max-model-len"][0]) >= 4096
    assert 0.3 <= float(flags["--gpu-memory-utilization"][0]) <= 0.95
    devices = engine["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert len(devices[0]["device_ids"]) == 1
    health = engine["healthcheck"]
    assert "/health" in " ".join(health["test"])
    assert health["start_period"].endswith("m") and int(health["start_period"][:-1]) >= 5
    assert engine["depends_on"]["models"]["condition"] == "service_completed_successfully"


def test_gpu_engines_take_one_gpu_each_by_default() -> None:
    ids = [gpu_device_id(engine) for engine in gpu_engines().values()]
    assert len(ids) == len(set(ids))
    raw = compose_raw()["services"]
    for name in gpu_engines():
        raw_id = gpu_device_id(raw[name])
        assert raw_id.startswith("${"), f"{name}: the GPU id should be configurable"


def test_model_download_lists_exactly_the_engines_models() -> None:
    models = compose()["services"]["models"]
    engine_models = sorted({engine_flags(e["command"])["--model"][0] for e in gpu_engines().values()})
    assert sorted(models["command"]) == engine_models
    assert any(v.endswith(":/root/.cache/huggingface") for v in models["volumes"])


def test_no_expert_publishes_a_port() -> None:
    services = compose()["services"]
    publishing = {name for name, spec in services.items() if spec.get("ports")}
    assert publishing <= PUBLISHING_SERVICES
    engines = {*gpu_engines(), "cpu-engine"}
    assert not publishing & engines
    for name in engines:
        networks = services[name]["networks"]
        assert set(networks) == {"experts"}, f"{name} must sit on the internal network only"
    assert compose()["networks"]["experts"]["internal"] is True


def test_prometheus_publishes_on_loopback_only() -> None:
    for name in ("prometheus", "prometheus-cpu"):
        assert all(port.startswith("127.0.0.1:") for port in compose()["services"][name]["ports"])


@pytest.mark.parametrize("name", ["gateway", "gateway-cpu"])
def test_gateway_service(name: str) -> None:
    gateway = compose()["services"][name]
    assert gateway["build"]["dockerfile"] == "Dockerfile"
    assert gateway["command"] == GATEWAY_COMMAND
    assert "./deploy/compose/experts.yaml:/etc/coe/experts.yaml:ro" in gateway["volumes"]
    assert "/ready" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["ports"] == ["8080:8080"]
    conditions = {spec["condition"] for spec in gateway["depends_on"].values()}
    assert conditions == {"service_started"}, "start with the engines, not once all are healthy"


def test_gpu_gateway_waits_for_every_engine_to_start() -> None:
    assert set(compose()["services"]["gateway"]["depends_on"]) == set(gpu_engines())


def test_gateway_image_matches_its_dockerfile() -> None:
    assert dockerfile_instruction(GATEWAY_DOCKERFILE, "ENTRYPOINT") == ["coe"]
    assert dockerfile_instruction(GATEWAY_DOCKERFILE, "CMD") == GATEWAY_COMMAND
    text = GATEWAY_DOCKERFILE.read_text(encoding="utf-8")
    copied = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY")]
    assert not [source for sources in copied for source in sources if source.startswith("packages")]
    assert "EXPOSE 8080" in text


def test_gateway_image_package_holds_no_tools_or_fakes(tmp_path: Path) -> None:
    """Build the wheel from exactly what the Dockerfile copies in, and list what it would install."""
    context = tmp_path / "context"
    for instruction in GATEWAY_DOCKERFILE.read_text(encoding="utf-8").splitlines():
        parts = instruction.split()
        if parts[:1] != ["COPY"] or parts[-1].startswith("/"):
            continue
        for source in parts[1:-1]:
            target = context / source
            if (REPO_ROOT / source).is_dir():
                shutil.copytree(REPO_ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO_ROOT / source, target)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    subprocess.run([*build, str(context)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("coe_gateway-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"gateway", "router_model", "composition"}
    assert not [name for name in names if "fake" in name or "coe_local" in name]


def test_cpu_engine_answers_for_every_compose_expert() -> None:
    registry = load_registry(COMPOSE_EXPERTS)
    engine = compose()["services"]["cpu-engine"]
    aliases = set(engine["networks"]["experts"]["aliases"])
    flags = engine_flags(dockerfile_instruction(CPU_DOCKERFILE, "ENTRYPOINT"))
    adapters = {module.split("=")[0] for module in flags.get("--lora-modules", [])}
    served = set(flags["--served-model-name"]) | adapters
    for expert, replica in ((e, r) for e in registry.experts for r in e.replicas):
        host, port = url_host_port(replica.url)
        assert host in aliases
        assert expert.model in served
        assert flags["--port"] == [str(port)]
    assert engine["build"]["dockerfile"] == "deploy/cpu/Dockerfile"


def test_cpu_engine_serves_what_the_local_profile_launches() -> None:
    local = load_registry(REPO_ROOT / "deploy" / "local" / "experts.yaml")
    (plan,) = plan_engines(local)
    flags = engine_flags(dockerfile_instruction(CPU_DOCKERFILE, "ENTRYPOINT"))
    text = CPU_DOCKERFILE.read_text(encoding="utf-8")
    cache = re.search(r"COE_CACHE_DIR=(\S+)", text)
    assert cache is not None and "coe models prepare" in text
    cache_dir = Path(cache.group(1))
    assert flags["--model"] == [str(model_dir(cache_dir, plan.model))]
    # The base model is served under its local name first; extra names cover compose experts it answers too.
    assert flags["--served-model-name"][0] == plan.served_name
    modules = dict(module.split("=", 1) for module in flags["--lora-modules"])
    assert modules == {name: str(adapter_dir(cache_dir, adapter)) for name, adapter in plan.adapters.items()}


def test_cpu_profile_replaces_every_gpu_service() -> None:
    gpu, cpu = set(services_in_profile("gpu")), set(services_in_profile("cpu"))
    assert {"gateway-cpu", "cpu-engine", "prometheus-cpu", "grafana"} <= cpu
    assert not (cpu - {"grafana"}) & gpu
