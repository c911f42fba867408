"""The registry's measured `routing:` section: rankings drive auto, and a bad or stale table fails at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from composition.write import write_routing
from gateway.registry import RegistryError, default_router_artifact, load_registry

REGISTRY = f"""
# hand-written comment that must survive --write
fallback: general
router: {{artifact: {default_router_artifact()}}}
experts:
  - {{name: general, url: http://127.0.0.1:1/v1, model: g, categories: [general, code]}}
  - {{name: code, url: http://127.0.0.1:1/v1, model: c, categories: []}}
  - {{name: math, url: http://127.0.0.1:1/v1, model: m, categories: [math]}}
"""


def setup(tmp_path: Path, ranking: dict[str, list[str]]) -> Path:
    registry = tmp_path / "experts.yaml"
    registry.write_text(REGISTRY)
    table = tmp_path / "eval" / "table.json"
    table.parent.mkdir(exist_ok=True)
    table.write_text('{"table": {}}\n')
    write_routing(registry, table, "likelihood", ranking)
    return registry


def test_hand_written_categories_still_route(tmp_path: Path) -> None:
    registry = tmp_path / "experts.yaml"
    registry.write_text(REGISTRY)
    loaded = load_registry(registry)
    assert loaded.expert_for_category("code").name == "general"
    assert [e.name for e in loaded.ranked_experts("math")] == ["math"]
    assert loaded.expert_for_category("legal").name == "general"  # unclaimed: the fallback


def test_written_ranking_wins_over_hand_written_lists(tmp_path: Path) -> None:
    path = setup(tmp_path, {"code": ["code", "general"], "math": ["general", "math"]})
    registry = load_registry(path)
    assert registry.expert_for_category("code").name == "code"
    assert [e.name for e in registry.ranked_experts("math")] == ["general", "math"]
    assert registry.expert_for_category("legal").name == "general"
    text = path.read_text()
    assert "# hand-written comment that must survive --write" in text
    assert registry.routing is not None and registry.routing.table == (tmp_path / "eval" / "table.json").resolve()
    assert yaml.safe_load(text)["routing"]["table"] == "eval/table.json"
    # Writing again replaces the section instead of adding a second one.
    write_routing(path, tmp_path / "eval" / "table.json", "likelihood", {"code": ["general"]})
    assert path.read_text().count("routing:") == 1
    assert load_registry(path).expert_for_category("code").name == "general"


def test_stale_table_is_a_start_up_error(tmp_path: Path) -> None:
    path = setup(tmp_path, {"code": ["code"]})
    (tmp_path / "eval" / "table.json").write_text('{"table": {"changed": 1}}\n')
    with pytest.raises(RegistryError, match=r"experts\.yaml: routing\.sha256: .*table\.json changed since"):
        load_registry(path)
    (tmp_path / "eval" / "table.json").unlink()
    with pytest.raises(RegistryError, match=r"routing\.table: cannot read"):
        load_registry(path)


def test_unknown_expert_or_category_is_a_start_up_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"routing\.ranked\.code: unknown expert\(s\) coder"):
        load_registry(setup(tmp_path, {"code": ["coder", "general"]}))
    with pytest.raises(RegistryError, match=r"routing\.ranked: unknown category cooking; the router"):
        load_registry(setup(tmp_path, {"cooking": ["general"]}))


def test_table_and_checksum_go_together(tmp_path: Path) -> None:
    path = tmp_path / "experts.yaml"
    path.write_text(REGISTRY + "routing: {table: t.json, ranked: {code: [code]}}\n")
    with pytest.raises(RegistryError, match="'table' and 'sha256' go together"):
        load_registry(path)
    path.write_text(REGISTRY + "routing: {ranked: {code: [code, math]}}\n")
    assert load_registry(path).expert_for_category("code").name == "code"


def test_failover_follows_the_measured_ranking_of_the_chosen_category() -> None:
    import anyio

    from coe_testing.routers import KeywordRouter
    from gateway.protocol import parse_chat
    from gateway.registry import Registry
    from gateway.routing import ExpertSelector

    registry = Registry.model_validate({
        "fallback": "general",
        "experts": [{"name": n, "url": f"http://{n}/v1", "model": n, "categories": [n]}
                    for n in ("code", "math", "general")],
        "routing": {"ranked": {"code": ["code", "general", "math"]}},
    })
    body = b'{"model": "auto", "messages": [{"role": "user", "content": "python bug"}]}'
    choice = anyio.run(ExpertSelector(registry, KeywordRouter()).decide, parse_chat(body))
    assert [e.name for e in choice.candidates] == ["code", "general", "math"]
