"""The composition report: each expert alone, the CoE (router + table), and the oracle, on the same items."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from composition.runner import Result
from composition.table import item_score

# item -> the category the router chose and whether it was confident enough (else the fallback answers)
RouteOf = Callable[[str], str | None]


def _line(
    by_item: dict[str, dict[str, float]],
    categories: dict[str, str],
    ranking: dict[str, list[str]],
    route: dict[str, str | None],
    fallback: str,
    current: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    items = [i for i, scores in by_item.items() if scores]
    experts = sorted({e for scores in by_item.values() for e in scores})
    full = [i for i in items if all(e in by_item[i] for e in experts)]
    n = len(full)
    if n == 0:
        return {"n": 0}

    def pick(category: str | None, table: dict[str, list[str]] = ranking) -> str:
        ranked = table.get(category or "", [])
        return ranked[0] if ranked else fallback

    single = {e: sum(by_item[i][e] for i in full) / n for e in experts}
    best = max(single, key=lambda e: single[e])
    coe = sum(by_item[i][pick(route.get(i))] for i in full) / n
    # The registry's routing as it stood: not chosen on these items, so free of the table's selection effect.
    coe_current = None
    chosen = {i: pick(route.get(i), current) for i in full} if current is not None else {}
    if chosen and all(chosen[i] in by_item[i] for i in full):
        coe_current = round(sum(by_item[i][chosen[i]] for i in full) / n, 4)
    oracle = sum(by_item[i][pick(categories[i])] for i in full) / n
    item_oracle = sum(max(by_item[i].values()) for i in full) / n
    routed_right = sum(route.get(i) == categories[i] for i in full) / n
    return {
        "n": n,
        "single": {e: round(v, 4) for e, v in single.items()},
        "best_single": {"expert": best, "score": round(single[best], 4)},
        "coe": round(coe, 4),
        "coe_registry": coe_current,
        "oracle": round(oracle, 4),
        "item_oracle": round(item_oracle, 4),
        "coe_minus_best_single": round(coe - single[best], 4),
        "oracle_minus_coe": round(oracle - coe, 4),
        "router_accuracy": round(routed_right, 4),
    }


def composition_report(
    results: Sequence[Result],
    metric: str,
    ranking: dict[str, list[str]],
    route: dict[str, str | None],
    fallback: str,
    current: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The report on all items and on the items the router never saw (`router_pool: false`); `current` is the
    registry's routing before this run (per category, best first), shown as a CoE line of its own."""
    by_item: dict[str, dict[str, float]] = defaultdict(dict)
    categories: dict[str, str] = {}
    unseen: set[str] = set()
    for result in results:
        score = item_score(result, metric)
        categories[result.item.id] = result.item.category
        if not result.item.router_pool:
            unseen.add(result.item.id)
        if score is not None and not result.error:
            by_item[result.item.id][result.expert] = score
    return {
        "metric": metric,
        "all": _line(by_item, categories, ranking, route, fallback, current),
        "router_pool_false": _line(
            {i: s for i, s in by_item.items() if i in unseen}, categories, ranking, route, fallback, current
        ),
    }


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table: one row per line (each expert, best single, CoE, oracles)."""
    lines = [f"| items ({report['metric']}) | " + " | ".join(["all", "router_pool false"]) + " |", "|---|---|---|"]
    parts = [report["all"], report["router_pool_false"]]

    def value(part: dict[str, Any], key: str, expert: str | None = None) -> str:
        if not part.get("n"):
            return "-"
        if expert is not None:
            return f"{part['single'][expert]:.3f}"
        if key == "best_single":
            return f"{part[key]['score']:.3f} ({part[key]['expert']})"
        return "-" if part.get(key) is None else f"{part[key]:.3f}"

    lines.append("| n | " + " | ".join(str(p.get("n", 0)) for p in parts) + " |")
    for expert in sorted(report["all"].get("single", {})):
        lines.append(f"| {expert} alone | " + " | ".join(value(p, "", expert) for p in parts) + " |")
    for key, label in [
        ("best_single", "best single expert"),
        ("coe", "**CoE (router + table)**"),
        ("coe_registry", "CoE (router + the registry's routing before this run)"),
        ("oracle", "oracle (best expert of the true category)"),
        ("item_oracle", "item oracle (best expert per item)"),
        ("coe_minus_best_single", "CoE - best single"),
        ("oracle_minus_coe", "oracle - CoE"),
        ("router_accuracy", "router accuracy"),
    ]:
        lines.append(f"| {label} | " + " | ".join(value(p, key) for p in parts) + " |")
    return "\n".join(lines) + "\n"
