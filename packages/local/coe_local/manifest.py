"""Checksummed folders: a `coe-manifest.json` listing every file's sha256, written last, checked on reuse."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MANIFEST_NAME = "coe-manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of one file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_folder(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` except the manifest, keyed by relative POSIX path."""
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    }


def write_manifest(folder: Path, source: dict[str, Any]) -> dict[str, Any]:
    """Hash the folder and write its manifest; `source` says what it was made from and how."""
    manifest = {"source": source, "files": hash_folder(folder)}
    (folder / MANIFEST_NAME).write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return manifest


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when absent or unreadable."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def verify_folder(folder: Path, source: dict[str, Any]) -> list[str]:
    """Why `folder` cannot be reused for `source` (empty when it can): missing, stale or altered files."""
    manifest = read_manifest(folder)
    if manifest is None:
        return [f"{folder}: no manifest"]
    # Compare as stored: JSON turns tuples into lists, so the live source goes through JSON too.
    if manifest.get("source") != json.loads(json.dumps(source)):
        return [f"{folder}: made from a different source or recipe"]
    expected: dict[str, str] = manifest.get("files", {})
    actual = hash_folder(folder)
    problems = [f"{name}: missing" for name in expected if name not in actual]
    problems += [
        f"{name}: checksum differs" for name in expected if name in actual and actual[name] != expected[name]
    ]
    problems += [f"{name}: not in manifest" for name in actual if name not in expected]
    return problems


@contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """A scratch folder beside `final` that replaces it only if the block succeeds (no half-made folders)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
