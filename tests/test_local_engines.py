"""Engine plans from a registry, and the vLLM command line of each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coe_local.engines import EnginePlanError, engine_command, engine_env, plan_engines, required_ids
from coe_local.prepare import PreparedModels
from gateway.registry import Registry, load_registry

PROFILE = Path(__file__).resolve().parent.parent / "deploy" / "local" / "experts.yaml"
ROUTER_CATEGORIES = ("code", "math", "medical", "legal", "finance", "science", "general", "multilingual")


def make_expert(name: str, port: int = 8101, adapter: str | None = None, **launch: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": "smollm2-135m-instruct", "port": port, **launch}
    if adapter:
        spec["adapter"] = adapter
    return {
        "name": name,
        "url": f"http://127.0.0.1:{port}/v1",
        "model": name,
        "categories": [name],
        "launch": spec,
    }


def make_registry(*experts: dict[str, Any]) -> Registry:
    return Registry.model_validate({"fallback": experts[0]["name"], "experts": list(experts)})


def test_experts_on_one_port_share_one_engine_with_their_adapters() -> None:
    registry = make_registry(
        make_expert("general", args=["--max-model-len", "2048"]),
        make_expert("code", adapter="smollm2-135m-code"),
        make_expert("other", port=8102),
    )
    shared, alone = plan_engines(registry)
    assert (shared.port, shared.served_name, shared.args) == (8101, "general", ["--max-model-len", "2048"])
    assert shared.adapters == {"code": "smollm2-135m-code"}
    assert shared.served_names == ["general", "code"]
    assert (alone.port, alone.served_name, alone.adapters) == (8102, "other", {})
    assert required_ids([shared, alone]) == (["smollm2-135m-instruct"], ["smollm2-135m-code"])


def test_experts_without_launch_start_nothing() -> None:
    remote = {"name": "big", "url": "http://gpu-box:8000/v1", "model": "big"}
    assert plan_engines(Registry.model_validate({"fallback": "big", "experts": [remote]})) == []


def test_adapters_alone_are_served_on_the_base_model_name() -> None:
    (plan,) = plan_engines(make_registry(make_expert("code", adapter="smollm2-135m-code")))
    assert plan.served_name == "smollm2-135m-instruct"
    assert plan.served_names == ["smollm2-135m-instruct", "code"]


@pytest.mark.parametrize(
    ("experts", "complaint"),
    [
        ([make_expert("a"), make_expert("b", model="gemma3-270m")], "different models"),
        (
            [
                make_expert("a", args=["--dtype", "bfloat16"]),
                make_expert("b", adapter="x", args=["--dtype", "float32"]),
            ],
            "different args",
        ),
        ([make_expert("a"), make_expert("b")], "only one expert may serve the base model"),
        ([{**make_expert("a"), "url": "http://127.0.0.1:9999/v1"}], "must point at the engine it launches"),
        ([{**make_expert("a"), "url": "http://10.0.0.1:8101/v1"}], "must point at the engine it launches"),
        ([{**make_expert("a"), "model": "other-name"}], "serves it as its name"),
    ],
)
def test_inconsistent_specs_are_refused(experts: list[dict[str, Any]], complaint: str) -> None:
    with pytest.raises(EnginePlanError, match=complaint):
        plan_engines(make_registry(*experts))


def test_command_line_serves_base_and_adapters_from_prepared_folders() -> None:
    registry = make_registry(
        make_expert("general", args=["--max-model-len", "2048"]),
        make_expert("code", adapter="smollm2-135m-code"),
        make_expert("math", adapter="smollm2-135m-math"),
    )
    (plan,) = plan_engines(registry)
    prepared = PreparedModels(
        models={"smollm2-135m-instruct": Path("/cache/models/base")},
        adapters={"smollm2-135m-code": Path("/cache/a/code"), "smollm2-135m-math": Path("/cache/a/math")},
    )
    command = engine_command(plan, prepared, python="python")
    assert command[:3] == ["python", "-m", "vllm.entrypoints.openai.api_server"]
    flags = " ".join(command[3:])
    assert "--model /cache/models/base --served-model-name general --host 127.0.0.1 --port 8101" in flags
    assert (
        "--enable-lora --max-lora-rank 8 --max-loras 2 --lora-modules code=/cache/a/code math=/cache/a/math"
        in flags
    )
    assert command[-2:] == ["--max-model-len", "2048"]


def test_command_line_without_adapters_has_no_lora_flags() -> None:
    (plan,) = plan_engines(make_registry(make_expert("general")))
    command = engine_command(
        plan, PreparedModels(models={"smollm2-135m-instruct": Path("/m")}), python="python"
    )
    assert not [arg for arg in command if "lora" in arg]


def test_engine_env_is_offline_with_the_plans_kv_cache() -> None:
    (plan,) = plan_engines(make_registry(make_expert("general", kv_cache_gib=2)))
    env = engine_env(plan, base={"PATH": "/bin", "HF_HUB_OFFLINE": "0"})
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["PATH"] == "/bin"
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # one process per engine: it starts ~10 s sooner
    kept = engine_env(plan, base={"VLLM_ENABLE_V1_MULTIPROCESSING": "1"})
    assert kept["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"  # a caller who wants the separate engine process keeps it


def test_local_profile_covers_every_category_with_real_engines() -> None:
    registry = load_registry(PROFILE)
    claimed = {c for expert in registry.experts for c in expert.categories}
    assert claimed == set(ROUTER_CATEGORIES)
    launched = [e for e in registry.experts if e.launch is not None]
    assert len({e.name for e in launched}) >= 3
    assert all(e.model == e.name for e in launched)
    (plan,) = plan_engines(registry)
    assert sorted(plan.served_names) == sorted(e.name for e in launched)
