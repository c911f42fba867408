"""Tiny labelled prompt sets written by the tests, and routers trained on them with the hashing embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY_PROMPTS: dict[str, list[str]] = {
    "code": [
        "how do i reverse a list in python",
        "fix this javascript function",
        "sql query to join two tables",
        "my python script throws a KeyError",
        "write a bash loop over files",
        "git rebase conflict help",
        "what does this python function return",
        "how to declare a variable in javascript",
        "python list comprehension syntax",
        "compile error in my java class",
    ],
    "medical": [
        "i have a headache and fever",
        "is ibuprofen safe for my stomach",
        "symptoms of diabetes",
        "my throat hurts when i swallow",
        "how long does the flu last",
        "what dose of tylenol for a child",
        "chest pain when breathing",
        "is my blood pressure too high",
        "rash on my arm that itches",
        "side effects of antibiotics",
    ],
    "legal": [
        "can my landlord keep my deposit",
        "is a verbal contract binding",
        "how do i sue for unpaid wages",
        "can police search my car without a warrant",
        "how to file for divorce",
        "is my lease enforceable",
        "what are my rights as a tenant",
        "can my employer fire me for being sick",
        "copyright law for youtube videos",
        "how to contest a parking ticket in court",
    ],
}


def write_prompts(path: Path, prompts: dict[str, list[str]], source: str = "tiny_test") -> Path:
    """Write prompts as router JSONL records."""
    with path.open("w") as stream:
        for label, texts in prompts.items():
            for text in texts:
                stream.write(json.dumps({"prompt": text, "domain": label, "source": source}) + "\n")
    return path


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A JSONL file of thirty obvious prompts in three categories."""
    return write_prompts(tmp_path / "tiny.jsonl", TINY_PROMPTS)


@pytest.fixture
def shared_router_data() -> Path:
    """`../shared/datasets/router` relative to the repository root, or a skip where it is absent."""
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "router"
    if not (folder / "dev_eval.jsonl").is_file():
        pytest.skip("../shared/datasets/router is absent: router data tests skipped")
    return folder
