"""Every PromQL expression in the shipped Grafana dashboards, with template variables substituted.

Used by the static dashboard tests (metric names, syntax through promtool) and by live tests that evaluate
each expression against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = REPO_ROOT / "deploy" / "grafana" / "dashboards"

# Grafana's built-in variables, with values that keep every expression valid PromQL over a short test run.
DEFAULT_BUILTINS: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<metric>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$")


@dataclass(frozen=True)
class PanelQuery:
    """One query of a dashboard: where it lives and its PromQL."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def where(self) -> str:
        """A readable location for failure messages."""
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def dashboard_files(folder: Path = DASHBOARD_DIR) -> list[Path]:
    """The dashboard JSON files, sorted."""
    return sorted(folder.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    """One dashboard's JSON model."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a dashboard must be a JSON object")
    return data


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from iter_panels(panel)


def raw_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every panel target's PromQL as written, variables unsubstituted."""
    title = str(dashboard.get("title", "?"))
    return [
        PanelQuery(title, str(panel.get("title", panel.get("id"))), str(target.get("refId")), target["expr"])
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def variable_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Each `label_values(metric, label)` template variable as the PromQL that lists those values."""
    title = str(dashboard.get("title", "?"))
    queries = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = _LABEL_VALUES.match(text)
        if match is None:
            raise ValueError(f"{title}: variable {variable.get('name')!r} is not label_values(...): {text!r}")
        metric, label = match.group("metric"), match.group("label")
        expr = f"count by ({label}) ({metric})" if metric else f"count by ({label}) ({{{label}!=''}})"
        queries.append(PanelQuery(title, f"variable {variable['name']}", "query", expr))
    return queries


def default_variable_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """A value per template variable: its 'All' regex where it has one, else its current value."""
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable.get("includeAll"):
            values[name] = variable.get("allValue") or ".*"
            continue
        current = variable.get("current", {}).get("value")
        if isinstance(current, list):
            current = "|".join(current)
        if not current:
            raise ValueError(f"variable {name!r} has neither an 'All' option nor a current value")
        values[name] = str(current)
    return values


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace `$name`, `${name}`, `${name:format}` and `[[name]]`; an unknown variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"unknown template variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def promql_expressions(
    folder: Path = DASHBOARD_DIR,
    builtins: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
) -> list[PanelQuery]:
    """Every panel and variable query of every dashboard, ready to evaluate.

    `builtins` overrides Grafana's built-ins (e.g. a shorter `__rate_interval` for a fast scrape);
    `variables` overrides dashboard variables (e.g. `{"expert": "code"}`).
    """
    queries = []
    for path in dashboard_files(folder):
        dashboard = load_dashboard(path)
        values = {**DEFAULT_BUILTINS, **(builtins or {}), **default_variable_values(dashboard)}
        values.update(variables or {})
        for query in [*raw_queries(dashboard), *variable_queries(dashboard)]:
            expr = substitute(query.expr, values)
            queries.append(PanelQuery(query.dashboard, query.panel, query.ref_id, expr))
    return queries


# Words in PromQL that are neither metric names nor functions.
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless",
     "atan2", "inf", "nan", "start", "end"}
)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords, labels and durations left out)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = _GROUPING.sub(" ", text)  # label lists of aggregations and vector matching
    text = re.sub(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-z]*\b", " ", text)  # numbers and durations
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, is_call = match.group(1), match.group(2)
        if not is_call and name not in _KEYWORDS:
            names.add(name)
    return names
