"""The launch spec of an expert's local engine."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coe_local.launch_spec import LaunchSpec, LaunchSpecError, launch_of
from gateway.registry import ExpertConfig


def test_defaults_to_vllm_with_one_gib_of_kv_cache() -> None:
    spec = LaunchSpec.model_validate({"model": "smollm2-135m-instruct", "port": 8101})
    assert (spec.engine, spec.adapter, spec.args, spec.kv_cache_gib) == ("vllm", None, [], 1)


def test_adapter_names_a_lora_on_the_base_model() -> None:
    spec = LaunchSpec.model_validate(
        {"model": "smollm2-135m-instruct", "port": 8101, "adapter": "smollm2-135m-code"}
    )
    assert spec.adapter == "smollm2-135m-code"


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"model": "m", "port": 8101, "gpus": 1}, "Extra inputs are not permitted"),
        ({"model": "m", "port": 0}, "greater than 0"),
        ({"model": "m", "port": 70000}, "less than 65536"),
        ({"model": "m", "port": 8101, "engine": "tgi"}, "'vllm'"),
        ({"model": "m", "port": 8101, "args": ["--port", "9"]}, "--port is set from the launch spec"),
        ({"model": "m", "port": 8101, "args": ["--served-model-name=x"]}, "--served-model-name is set"),
        ({"model": "m", "port": 8101, "kv_cache_gib": 0}, "greater than 0"),
        ({"port": 8101}, "model"),
    ],
)
def test_rejects_bad_specs(fields: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        LaunchSpec.model_validate(fields)


def test_a_bad_launch_section_names_the_expert_and_key() -> None:
    expert = ExpertConfig(name="code", url="http://127.0.0.1:8101/v1", model="code", launch={"model": "m", "port": 0})
    with pytest.raises(LaunchSpecError, match=r"expert 'code': launch\.port: Input should be greater than 0"):
        launch_of(expert)


def test_no_launch_section_is_no_spec() -> None:
    assert launch_of(ExpertConfig(name="code", url="http://127.0.0.1:8101/v1", model="code")) is None
