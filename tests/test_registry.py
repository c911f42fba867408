"""The expert registry: valid files load, bad ones fail naming the file, the key and the reason."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gateway.registry import RegistryError, default_router_artifact, load_registry, warn_unclaimed

GOOD = """
fallback: general
router: {artifact: router_model/artifacts/default, min_confidence: 0.6}
experts:
  - name: code
    url: http://127.0.0.1:8001/v1/
    model: Qwen/Qwen2.5-Coder-7B-Instruct
    categories: [code]
    description: Code generation
  - name: general
    url: http://127.0.0.1:8002/v1
    model: Qwen/Qwen2.5-7B-Instruct
    categories: [general]
"""


def write(tmp_path: Path, text: str, name: str = "experts.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_yaml(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, GOOD))
    assert [e.name for e in registry.experts] == ["code", "general"]
    assert registry.experts[0].url == "http://127.0.0.1:8001/v1"
    assert registry.router.min_confidence == 0.6
    assert registry.router.artifact == (tmp_path / "router_model/artifacts/default").resolve()
    assert registry.expert_for_category("code").name == "code"
    assert registry.expert_for_category("legal").name == "general"


def test_json_is_accepted_and_router_is_optional(tmp_path: Path) -> None:
    data = {"fallback": "g", "experts": [{"name": "g", "url": "http://h:1/v1", "model": "m"}]}
    registry = load_registry(write(tmp_path, json.dumps(data), "experts.json"))
    assert registry.router.artifact == default_router_artifact()
    assert registry.router.min_confidence == 0.5


@pytest.mark.parametrize(("text", "key", "reason"), [
    (GOOD.replace("fallback: general", "fallback: nobody"), "(top level)", "fallback 'nobody'"),
    (GOOD.replace("url: http://127.0.0.1:8002/v1", "url: ftp://x"), "experts.1.url", "http"),
    (GOOD.replace("    model: Qwen/Qwen2.5-7B-Instruct\n", ""), "experts.1.model", "Field required"),
    (GOOD.replace("name: general", "name: code").replace("fallback: general", "fallback: code"), "(top level)",
     "repeated: code"),
    (GOOD.replace("min_confidence: 0.6", "min_confidence: 3"), "router.min_confidence", "less than or equal"),
    (GOOD.replace("description: Code generation", "descripton: typo"), "experts.0.descripton", "Extra inputs"),
    (GOOD.replace("name: code", "name: auto"), "experts.0.name", "reserved"),
])
def test_bad_files_name_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    message = str(caught.value)
    assert str(path) in message and key in message and reason in message


def test_unreadable_and_unparsable(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(write(tmp_path, "experts: [unclosed"))
    with pytest.raises(RegistryError, match="expected a mapping"):
        load_registry(write(tmp_path, "- a list"))


def test_unclaimed_categories_are_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = load_registry(write(tmp_path, GOOD))
    with caplog.at_level(logging.WARNING):
        assert warn_unclaimed(registry, ("code", "general", "legal")) == ["legal"]
    assert "'legal' is claimed by no expert" in caplog.text


def test_shipped_registries_load() -> None:
    root = Path(__file__).resolve().parent.parent
    for path in [root / "experts.yaml", *sorted((root / "deploy").glob("*/experts.yaml"))]:
        if path.exists():
            assert load_registry(path).experts
