"""vLLM's own serving benchmark (`vllm.benchmarks.serve`) against several loopback targets, one child process."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.loopback import require_loopback
from bench.report import Table

FIELDS = ("completed", "request_throughput", "output_throughput", "median_ttft_ms", "p99_ttft_ms",
          "median_tpot_ms", "median_itl_ms", "p99_itl_ms")


@dataclass(frozen=True)
class ServeRun:
    """One benchmark run: a label, the server's origin (no /v1) and the model name to ask for."""

    label: str
    origin: str
    model: str


def run_all(runs: list[ServeRun], tokenizer: Path, prompts: int, concurrency: int, input_len: int,
            output_len: int, out_dir: Path, api_key: str = "none", timeout_s: float = 600.0) -> dict[str, dict]:
    """Run the benchmark for each target in one child process (vLLM imports once); results by label."""
    for run in runs:
        require_loopback(run.origin)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bench.vllm_serve", "--runs", json.dumps([asdict(r) for r in runs]),
               "--tokenizer", str(tokenizer), "--prompts", str(prompts), "--concurrency", str(concurrency),
               "--input-len", str(input_len), "--output-len", str(output_len), "--out-dir", str(out_dir)]
    env = {**os.environ, "OPENAI_API_KEY": api_key, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    root = Path(__file__).resolve().parent.parent
    with (out_dir / "vllm-bench.log").open("wb") as log:
        subprocess.run(command, check=True, timeout=timeout_s, stdout=log, stderr=subprocess.STDOUT, env=env,
                       cwd=root)
    results = {}
    for run in runs:
        path = out_dir / f"{run.label}.json"
        if path.is_file():
            results[run.label] = json.loads(path.read_text())
    return results


def table(results: dict[str, dict]) -> Table:
    """The figures vLLM users compare, one row per target."""
    rows = []
    for label, r in results.items():
        rows.append([label, str(r.get("completed", "?")),
                     *(f"{r[f]:.2f}" if isinstance(r.get(f), int | float) else "n/a" for f in FIELDS[1:])])
    return Table(["target", "completed", "requests/s", "output tokens/s", "TTFT p50 ms", "TTFT p99 ms",
                  "TPOT p50 ms", "ITL p50 ms", "ITL p99 ms"], rows)


def _child(argv: list[str]) -> int:
    from vllm.benchmarks import serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = argparse.ArgumentParser()
    for flag in ("--runs", "--tokenizer", "--out-dir"):
        parser.add_argument(flag, required=True)
    for flag in ("--prompts", "--concurrency", "--input-len", "--output-len"):
        parser.add_argument(flag, type=int, required=True)
    args = parser.parse_args(argv)
    for run in json.loads(args.runs):
        bench_parser = FlexibleArgumentParser()
        serve.add_cli_args(bench_parser)
        serve.main(bench_parser.parse_args([
            "--backend", "openai-chat", "--base-url", run["origin"], "--endpoint", "/v1/chat/completions",
            "--model", run["model"], "--tokenizer", args.tokenizer, "--dataset-name", "random",
            "--random-input-len", str(args.input_len), "--random-output-len", str(args.output_len),
            "--num-prompts", str(args.prompts), "--max-concurrency", str(args.concurrency), "--ignore-eos",
            "--seed", "0", "--disable-tqdm", "--percentile-metrics", "ttft,tpot,itl", "--metric-percentiles",
            "50,99", "--save-result", "--result-dir", args.out_dir, "--result-filename", f"{run['label']}.json",
        ]))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
