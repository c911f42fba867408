"""`coe router eval`: score a router on a labelled JSONL file, including one-at-a-time latency."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from router_model.dataset import LabelledPrompt
from router_model.metrics import classification_report, latency_summary
from router_model.plots import reliability_bins
from router_model.query_router import RoutingDecision

if TYPE_CHECKING:
    from router_model.cascade import AnyRouter


def evaluate_router(
    router: AnyRouter,
    prompts: Sequence[LabelledPrompt],
    latency_queries: int = 200,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Quality over every prompt (batched), then latency over a sample of them, one query at a time."""
    index_of = {name: index for index, name in enumerate(router.categories)}
    known = [p for p in prompts if p.label in index_of]
    decisions: list[RoutingDecision] = []
    if known:
        decisions = router.decisions(router.text_probabilities([p.text for p in known], cache_dir))
    truth = np.array([index_of[p.label] for p in known], dtype=np.int64)
    predicted = np.array([index_of[d.category] for d in decisions], dtype=np.int64)
    confidence = np.array([d.confidence for d in decisions], dtype=np.float64)
    report = classification_report(router.categories, truth, predicted, confidence)
    report["reliability"] = reliability_bins(confidence, truth == predicted)
    report["skipped_unknown_labels"] = len(prompts) - len(known)
    report["latency"] = measure_latency(router, [p.text for p in known], latency_queries, seed)
    return report


def measure_latency(router: AnyRouter, texts: Sequence[str], queries: int, seed: int) -> dict[str, Any]:
    """Per-query routing latency (embed + classify) and its stages, after one warm-up call."""
    if not texts or queries <= 0:
        return latency_summary([])
    router.warm()
    chosen = random.Random(seed).choices(list(texts), k=queries)
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    for text in chosen:
        started = time.perf_counter()
        _, timings = router.route_timed(text)
        totals.append(time.perf_counter() - started)
        for stage, seconds in timings.items():
            stages.setdefault(stage, []).append(seconds)
    summary: dict[str, Any] = latency_summary(totals)
    # One thread, one query at a time: what one core sustains without batching.
    summary["decisions_per_s"] = len(totals) / sum(totals) if sum(totals) else 0.0
    # A cascade's second stage runs for some queries only: its share is a mean, its stages a p50 where it ran.
    share = stages.pop("slow_share", None)
    summary["stages_p50_ms"] = {stage: float(np.median(values) * 1000) for stage, values in stages.items()}
    if share is not None:
        summary["slow_share"] = float(np.mean(share))
    return summary


def format_report(report: dict[str, Any]) -> str:
    """The human-readable form of an evaluation report."""
    lines = [
        f"n={report['n']}  accuracy={report['accuracy']:.4f}  macro_f1={report['macro_f1']:.4f}  "
        f"ece={report['ece']:.4f}  accuracy@90%coverage={report['accuracy_at_90pct_coverage']:.4f}"
    ]
    if report.get("skipped_unknown_labels"):
        lines.append(f"skipped {report['skipped_unknown_labels']} prompts whose label the router does not know")
    lines.append("")
    lines.append(f"{'category':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name, scores in report["per_category"].items():
        lines.append(
            f"{name:<14}{scores['precision']:>10.3f}{scores['recall']:>10.3f}{scores['f1']:>10.3f}"
            f"{scores['support']:>10d}"
        )
    labels = report["confusion"]["labels"]
    lines += [
        "",
        "confusion (rows: truth, columns: predicted)",
        " " * 14 + "".join(f"{n[:7]:>8}" for n in labels),
    ]
    for name, row in zip(labels, report["confusion"]["matrix"], strict=True):
        lines.append(f"{name:<14}" + "".join(f"{count:>8d}" for count in row))
    latency = report.get("latency", {})
    if latency.get("n"):
        stages = "  ".join(f"{k}={v:.2f}" for k, v in latency.get("stages_p50_ms", {}).items())
        lines += [
            "",
            f"latency over {latency['n']} single queries: p50={latency['p50_ms']:.2f} ms  "
            f"p99={latency['p99_ms']:.2f} ms  throughput={latency.get('decisions_per_s', 0.0):.0f} decisions/s "
            f"on one thread  (stage p50 ms: {stages})",
        ]
        if "slow_share" in latency:
            lines.append(f"cascade: the transformer stage ran for {latency['slow_share']:.1%} of these queries")
    return "\n".join(lines)
