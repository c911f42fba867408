"""`coe router train` and `coe router eval`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from router_model.licences import KNOWN_SOURCE_LICENCES


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the router subcommands."""
    router = subparsers.add_parser("router", help="train and evaluate the query router")
    commands = router.add_subparsers(dest="router_command", required=True)
    _add_train(commands)
    _add_eval(commands)
    _add_cascade(commands)


def _add_fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt-field", default="prompt", help="JSON field holding the prompt (default prompt)")
    parser.add_argument("--label-field", default="domain", help="JSON field holding the category (default domain)")


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a router artifact from labelled JSONL prompts")
    train.add_argument("--data", type=Path, nargs="+", required=True, help="JSONL files or folders of them")
    train.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    train.add_argument("--seed", type=int, default=0)
    _add_fields(train)
    train.add_argument(
        "--embedder",
        choices=("minilm", "minilm-onnx", "hashing", "static"),
        default="minilm",
        help="static: a word-piece table distilled from MiniLM and fine-tuned with a linear head (needs torch); "
        "minilm-onnx: MiniLM exported to int8 ONNX into the artifact (serving needs no torch)",
    )
    train.add_argument(
        "--int8", action="store_true", help="MiniLM with int8 dynamic-quantised linear layers (faster on CPU)"
    )
    train.add_argument("--classifier", choices=("knn+logreg", "knn", "logreg", "centroid", "mlp"), default="knn+logreg")
    train.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="classifier parameter, e.g. regularisation=3 (logreg), k=30 (knn), knn_weight=0.7, hidden=256 (mlp)",
    )
    train.add_argument(
        "--tune-epochs",
        type=float,
        default=0.0,
        help="minilm-onnx: fine-tune MiniLM end to end on the labels first (torch; ~1.6 s per 32 prompts on 2 cores)",
    )
    train.add_argument("--per-class", type=int, default=1200, help="prompts per category at most")
    train.add_argument("--per-source", type=int, default=800, help="prompts per source within a category at most")
    train.add_argument(
        "--calibration-fraction",
        type=float,
        default=0.2,
        help="share held out to fit the temperature (then refit on all)",
    )
    train.add_argument("--categories", help="comma-separated label order (default: sorted labels seen)")
    train.add_argument(
        "--permissive-only",
        action="store_true",
        help=f"refuse sources without a permissive licence (known: {len(KNOWN_SOURCE_LICENCES)})",
    )
    train.add_argument("--eval-data", type=Path, help="labelled JSONL to score the artifact on (stored in meta)")
    train.add_argument("--cache", type=Path, help="folder to cache embeddings in between runs")
    train.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    train.set_defaults(handler=_train)


def _add_eval(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("eval", help="score a router artifact on labelled JSONL prompts")
    evaluate.add_argument("--data", type=Path, required=True, help="JSONL file of labelled prompts")
    evaluate.add_argument("--artifact", type=Path, help="artifact folder (default: the shipped one)")
    _add_fields(evaluate)
    evaluate.add_argument("--latency-queries", type=int, default=200, help="single queries timed (0: none)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument(
        "--plots", type=Path, metavar="DIR", help="also write confusion.png and reliability.png into DIR"
    )
    evaluate.set_defaults(handler=_eval)


def _add_cascade(commands: argparse._SubParsersAction) -> None:
    cascade = commands.add_parser(
        "cascade", help="put a fast router in front of an artifact: it decides when its confidence is high enough"
    )
    cascade.add_argument("--artifact", type=Path, required=True, help="the artifact that decides when unsure")
    cascade.add_argument("--fast", type=Path, required=True, help="the fast artifact (copied into --artifact)")
    cascade.add_argument(
        "--threshold", type=float, required=True, help="the fast stage's calibrated confidence that suffices"
    )
    cascade.add_argument("--eval-data", type=Path, help="labelled JSONL to score the cascade on (stored in meta)")
    cascade.set_defaults(handler=_cascade)


def _cascade(args: argparse.Namespace) -> int:
    from router_model.artifact import read_meta, record_scores
    from router_model.cascade import attach_fast_stage

    before = read_meta(args.artifact)
    attach_fast_stage(args.artifact, args.fast, args.threshold)
    print(f"{args.artifact}: the fast stage decides at confidence >= {args.threshold}", file=sys.stderr)
    if args.eval_data:
        name = args.eval_data.stem
        alone = before.get("scores", {}).get(name)
        # Only an artifact that was not a cascade yet was scored by its second stage alone; a re-attached one's
        # score is the previous cascade's, and its second-stage record stays as it is.
        if alone is not None and not before.get("cascade"):
            record_scores(args.artifact, f"{name}_second_stage_alone", alone)
        report = _evaluate(args.artifact, args.eval_data, "prompt", "domain", latency_queries=200)
        record_scores(args.artifact, name, _scores_for_meta(report, args.eval_data))
        print(
            f"{args.eval_data.name}: macro_f1={report['macro_f1']:.4f} accuracy={report['accuracy']:.4f} "
            f"ece={report['ece']:.4f} p50={report['latency']['p50_ms']:.2f} ms "
            f"(second stage for {report['latency'].get('slow_share', 0.0):.0%} of queries)",
            file=sys.stderr,
        )
    return 0


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise SystemExit(f"--param expects KEY=VALUE, got {pair!r}")
        params[key] = json.loads(value) if value.replace(".", "", 1).lstrip("-").isdigit() else value
    return params


def _train(args: argparse.Namespace) -> int:
    from router_model.artifact import record_scores
    from router_model.embedders import make_embedder
    from router_model.training import TrainConfig, train_router, write_router

    config = TrainConfig(
        data=args.data,
        out=args.out,
        seed=args.seed,
        prompt_field=args.prompt_field,
        label_field=args.label_field,
        per_class=args.per_class,
        per_source=args.per_source,
        classifier=args.classifier,
        classifier_params=_parse_params(args.param),
        calibration_fraction=args.calibration_fraction,
        categories=args.categories.split(",") if args.categories else None,
        permissive_only=args.permissive_only,
        cache_dir=args.cache,
        progress=not args.quiet,
    )
    log = (lambda _line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    if args.tune_epochs > 0 and args.embedder != "minilm-onnx":
        print("coe router train: --tune-epochs works with --embedder minilm-onnx only", file=sys.stderr)
        return 2
    if args.embedder == "static":
        from router_model.static_training import train_static_router

        write_router(train_static_router(config, log), args.out)
    elif args.embedder == "minilm-onnx":
        from router_model.training import train_onnx_router

        train_onnx_router(config, args.tune_epochs, log)
    else:
        embedder = make_embedder({"kind": args.embedder, "dimension": 1024, "int8": args.int8})
        write_router(train_router(config, embedder, log), args.out)
    log(f"wrote {args.out}")
    if args.eval_data:
        report = _evaluate(
            args.out,
            args.eval_data,
            args.prompt_field,
            args.label_field,
            latency_queries=200,
            cache=args.cache,
        )
        record_scores(args.out, args.eval_data.stem, _scores_for_meta(report, args.eval_data))
        log(
            f"{args.eval_data.name}: macro_f1={report['macro_f1']:.4f} accuracy={report['accuracy']:.4f} "
            f"ece={report['ece']:.4f} p50={report['latency']['p50_ms']:.2f} ms"
        )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from router_model.artifact import default_artifact_dir
    from router_model.evaluation import format_report

    artifact = args.artifact or default_artifact_dir()
    report = _evaluate(artifact, args.data, args.prompt_field, args.label_field, args.latency_queries)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.plots:
        from router_model.plots import write_plots

        for path in write_plots(report, args.plots, f"{Path(artifact).name} on {args.data.stem}"):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _evaluate(
    artifact: Path,
    data: Path,
    prompt_field: str,
    label_field: str,
    latency_queries: int,
    cache: Path | None = None,
) -> dict[str, Any]:
    from router_model.cascade import load_router
    from router_model.dataset import read_jsonl
    from router_model.evaluation import evaluate_router

    prompts = read_jsonl(data, prompt_field, label_field).prompts
    return evaluate_router(load_router(artifact), prompts, latency_queries, cache_dir=cache)


def _scores_for_meta(report: dict[str, Any], data: Path) -> dict[str, Any]:
    """The evaluation summary kept in meta.json (the data file named, never its machine path)."""
    from router_model.dataset import read_jsonl

    return {
        "file": data.name,
        "sha256": read_jsonl(data).sha256,
        **{key: report[key] for key in ("n", "accuracy", "macro_f1", "ece", "accuracy_at_90pct_coverage")},
        "f1": {name: round(s["f1"], 4) for name, s in report["per_category"].items()},
        "latency_ms": {key: report["latency"].get(key) for key in ("p50_ms", "p99_ms")},
        **({"second_stage_share": report["latency"]["slow_share"]} if "slow_share" in report["latency"] else {}),
    }
