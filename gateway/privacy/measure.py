"""`python -m gateway.privacy.measure [FILE]`: precision and recall on a labelled set, and the guard's latency."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from gateway.privacy.detectors import find_all
from gateway.privacy.guard import PrivacyGuard

DEFAULT_SET = Path("tests/data/privacy_labelled.jsonl")


def load_set(path: Path) -> list[dict[str, Any]]:
    """Rows of `{"text", "pii": [[kind, value], ...]}`."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Entity-level precision and recall: a hit is the right kind over exactly the labelled value."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    misses: list[str] = []
    for row in rows:
        text = row["text"]
        expected = Counter((kind, value) for kind, value in row["pii"])
        got = Counter((f.kind, text[f.start:f.end]) for f in find_all(text))
        for item in set(expected) | set(got):
            hit = min(expected[item], got[item])
            tp[item[0]] += hit
            fp[item[0]] += got[item] - hit
            fn[item[0]] += expected[item] - hit
            if got[item] != expected[item]:
                misses.append(f"{item[0]} {item[1]!r}: expected {expected[item]}, found {got[item]}")
    kinds = sorted(set(tp) | set(fp) | set(fn))

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 3) if b else None

    per_kind = {k: {"tp": tp[k], "fp": fp[k], "fn": fn[k], "precision": ratio(tp[k], tp[k] + fp[k]),
                    "recall": ratio(tp[k], tp[k] + fn[k])} for k in kinds}
    all_tp, all_fp, all_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    return {"rows": len(rows), "negatives": sum(1 for r in rows if not r["pii"]),
            "precision": ratio(all_tp, all_tp + all_fp), "recall": ratio(all_tp, all_tp + all_fn),
            "per_kind": per_kind, "errors": misses}


def latency(rows: list[dict[str, Any]], chars: int, rounds: int) -> dict[str, float]:
    """p50/p99 milliseconds of `redact` over a chat payload of about `chars` characters built from the set."""
    corpus = " ".join(r["text"] for r in rows)
    text = (corpus * (chars // len(corpus) + 1))[:chars] if chars > len(corpus) else corpus[:chars]
    payload = {"model": "auto", "messages": [{"role": "user", "content": text}]}
    guard = PrivacyGuard()
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        guard.apply(payload, "redact")
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return {"chars": len(text), "p50_ms": round(statistics.median(samples), 3),
            "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_SET)
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args(argv)
    rows = load_set(args.data)
    report = score(rows)
    report["latency"] = {"short": latency(rows, 120, args.rounds), "long": latency(rows, 8000, args.rounds)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
