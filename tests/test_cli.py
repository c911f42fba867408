"""`coe serve` refuses a bad start-up with one clear line and exit code 2, before binding anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main


def test_bad_registry_names_file_key_and_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "experts.yaml"
    path.write_text("fallback: nobody\nexperts:\n  - {name: a, url: 'http://h:1/v1', model: m}\n")
    assert main(["serve", "--experts", str(path), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "fallback 'nobody'" in err


def test_missing_router_artifact_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "experts.json"
    path.write_text(json.dumps({"fallback": "a", "router": {"artifact": "nowhere"},
                                "experts": [{"name": "a", "url": "http://h:1/v1", "model": "m"}]}))
    assert main(["serve", "--experts", str(path), "--port", "1"]) == 2
    assert "no router artifact at" in capsys.readouterr().err


def test_keys_hash_prints_what_the_keys_file_stores(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from gateway.auth import hash_key
    from gateway.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("sk-one\n\nsk-two\n"))
    assert main(["keys", "hash"]) == 0
    assert capsys.readouterr().out.split() == [hash_key("sk-one"), hash_key("sk-two")]
