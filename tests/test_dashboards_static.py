"""The Grafana dashboards and provisioning, checked without Grafana: JSON, metric names, PromQL syntax."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.dashboards import (
    DASHBOARD_DIR,
    REPO_ROOT,
    dashboard_files,
    default_variable_values,
    iter_panels,
    load_dashboard,
    metric_names,
    promql_expressions,
    raw_queries,
    substitute,
    variable_queries,
)

PROVISIONING = REPO_ROOT / "deploy" / "grafana" / "provisioning"

# The gateway's series (names and types fixed by the metrics design); histograms expose three series each.
GATEWAY_METRICS = {
    "coe_requests_total": "counter",
    "coe_request_duration_seconds": "histogram",
    "coe_time_to_first_token_seconds": "histogram",
    "coe_inter_token_latency_seconds": "histogram",
    "coe_output_tokens_per_second": "histogram",
    "coe_prompt_tokens_total": "counter",
    "coe_output_tokens_total": "counter",
    "coe_routing_decisions_total": "counter",
    "coe_routing_duration_seconds": "histogram",
    "coe_routing_stages_total": "counter",
    "coe_router_confidence": "histogram",
    "coe_inflight_requests": "gauge",
    "coe_expert_up": "gauge",
    "coe_upstream_errors_total": "counter",
    "coe_engine_rejections_total": "counter",
    "coe_fallbacks_total": "counter",
    "coe_client_disconnects_total": "counter",
    "coe_replica_up": "gauge",
    "coe_replica_attempts_total": "counter",
    "coe_resumes_total": "counter",
}
# vLLM 0.32's own series the dashboards may use (counters as exposed, with `_total`).
VLLM_METRICS = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:generation_tokens_total": "counter",
    "vllm:prompt_tokens_total": "counter",
    "vllm:num_preemptions_total": "counter",
    "vllm:request_success_total": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
}


def exposed_series(metrics: dict[str, str]) -> set[str]:
    """The series names Prometheus stores for each metric."""
    names = set()
    for name, kind in metrics.items():
        if kind == "histogram":
            names.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        else:
            names.add(name)
    return names


KNOWN_SERIES = exposed_series(GATEWAY_METRICS) | exposed_series(VLLM_METRICS)
ALL_QUERIES = promql_expressions()


def series_used_by(dashboard_title: str) -> set[str]:
    """Every series any query of one dashboard selects."""
    queries = [query for query in ALL_QUERIES if query.dashboard == dashboard_title]
    return {name for query in queries for name in metric_names(query.expr)}


def test_both_dashboards_ship() -> None:
    names = {path.name for path in dashboard_files()}
    assert {"coe-overview.json", "vllm-engines.json"} <= names


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_dashboard_model_is_well_formed(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in iter_panels(dashboard)]
    assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
    for panel in iter_panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"{path.name}: panel {panel['title']!r} has no description"
        assert panel["targets"], f"{path.name}: panel {panel['title']!r} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_dashboard_selects_experts_by_variable(path: Path) -> None:
    dashboard = load_dashboard(path)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["expert"]["multi"] and variables["expert"]["includeAll"]
    filtered = [q for q in raw_queries(dashboard) if "$expert" in q.expr]
    assert len(filtered) >= len(raw_queries(dashboard)) // 2, "most panels should follow the expert selection"


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_panels_use_the_provisioned_datasource(path: Path) -> None:
    datasources = PROVISIONING / "datasources" / "prometheus.yaml"
    provisioned = yaml.safe_load(datasources.read_text(encoding="utf-8"))
    uids = {source["uid"] for source in provisioned["datasources"]}
    dashboard = load_dashboard(path)
    for panel in iter_panels(dashboard):
        for holder in [panel, *panel.get("targets", [])]:
            if "datasource" in holder:
                assert holder["datasource"]["uid"] in uids, f"{path.name}: {panel['title']!r}"
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] in uids


@pytest.mark.parametrize("query", ALL_QUERIES, ids=lambda q: q.where)
def test_queries_only_use_known_series(query) -> None:  # type: ignore[no-untyped-def]
    names = metric_names(query.expr)
    assert names, f"{query.where}: selects no metric: {query.expr}"
    unknown = names - KNOWN_SERIES
    assert not unknown, f"{query.where}: unknown series {sorted(unknown)} in {query.expr}"


def test_overview_covers_every_question() -> None:
    used = series_used_by("CoE overview")
    wanted = {
        "coe_output_tokens_total",
        "coe_time_to_first_token_seconds_bucket",
        "coe_inter_token_latency_seconds_bucket",
        "coe_requests_total",
        "coe_routing_decisions_total",
        "coe_router_confidence_bucket",
        "coe_fallbacks_total",
        "coe_upstream_errors_total",
        "coe_inflight_requests",
        "coe_expert_up",
    }
    assert wanted <= used, f"missing from the overview: {sorted(wanted - used)}"


def test_engine_dashboard_shows_vllm_load_and_throughput() -> None:
    used = series_used_by("CoE vLLM engines")
    wanted = {
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:generation_tokens_total",
    }
    assert wanted <= used


def test_gateway_metrics_are_the_ones_the_dashboards_know() -> None:
    from gateway.metrics import GatewayMetrics

    registry = GatewayMetrics(["general"]).registry
    exported = {
        family.name + ("_total" if family.type == "counter" else ""): family.type for family in registry.collect()
    }
    assert exported == GATEWAY_METRICS


def test_known_vllm_series_exist_in_the_installed_vllm() -> None:
    spec = importlib.util.find_spec("vllm")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("vllm is not installed (pip install -e packages/local); cannot check vLLM's metric names")
    root = Path(next(iter(spec.submodule_search_locations)))
    source = "\n".join(path.read_text(encoding="utf-8") for path in (root / "v1" / "metrics").glob("*.py"))
    for series, kind in VLLM_METRICS.items():
        declared = series.removesuffix("_total") if kind == "counter" else series
        assert f'"{declared}"' in source, f"vLLM at {root} declares no metric {declared}"


@pytest.mark.prometheus
def test_every_expression_parses_as_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: install Debian's prometheus package (make system-deps)")
    # promtool parses each recording rule's expression with Prometheus' own parser.
    rules = [{"record": f"coe:check_{index}", "expr": query.expr} for index, query in enumerate(ALL_QUERIES)]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_provider_points_at_the_mounted_dashboards() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "coe.yaml").read_text(encoding="utf-8"))
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    volumes = compose["services"]["grafana"]["volumes"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in volumes if ":" in volume)
    path = provider["providers"][0]["options"]["path"]
    assert mounts.get("./deploy/grafana/dashboards") == path
    assert mounts.get("./deploy/grafana/provisioning") == "/etc/grafana/provisioning"
    assert DASHBOARD_DIR == REPO_ROOT / "deploy" / "grafana" / "dashboards"


# The helper itself.


def test_metric_names_skips_functions_labels_and_durations() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (expert, le) (rate(coe_time_to_first_token_seconds_bucket'
        '{expert=~"a|b", status!~"2.."}[5m]))) / on (expert) group_left (kind)'
        " vllm:kv_cache_usage_perc offset 1m"
        ' or vector(0)'
    )
    assert metric_names(expr) == {"coe_time_to_first_token_seconds_bucket", "vllm:kv_cache_usage_perc"}


def test_metric_names_ignores_words_inside_strings() -> None:
    expr = 'label_replace(up{job="x"}, "expert", "$1", "instance", "(fake_metric).*")'
    assert metric_names(expr) == {"up"}


def test_substitute_handles_every_variable_form() -> None:
    values = {"expert": "code|math", "__rate_interval": "30s"}
    assert substitute('rate(x{e=~"$expert"}[$__rate_interval])', values) == 'rate(x{e=~"code|math"}[30s])'
    written = 'x{e=~"${expert}"} [[expert]] ${expert:regex}'
    assert substitute(written, values) == 'x{e=~"code|math"} code|math code|math'
    with pytest.raises(KeyError, match="nope"):
        substitute("x{a=$nope}", values)


def test_variables_default_to_all_and_builtins_can_be_overridden() -> None:
    overview = load_dashboard(DASHBOARD_DIR / "coe-overview.json")
    assert default_variable_values(overview) == {"expert": ".*"}
    short = promql_expressions(builtins={"__rate_interval": "20s"}, variables={"expert": "code"})
    assert all("$" not in query.expr for query in short)
    assert any('expert=~"code"' in query.expr and "[20s]" in query.expr for query in short)


def test_variable_queries_become_promql() -> None:
    overview = load_dashboard(DASHBOARD_DIR / "coe-overview.json")
    assert [q.expr for q in variable_queries(overview)] == ["count by (expert) (coe_requests_total)"]
