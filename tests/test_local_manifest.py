"""Checksummed folders: manifests, verification and staged replacement."""

from __future__ import annotations

from pathlib import Path

import pytest

from coe_local.manifest import MANIFEST_NAME, read_manifest, staged_folder, verify_folder, write_manifest

SOURCE = {"recipe": "test/1", "sha256": "abc"}


def make_folder(root: Path) -> Path:
    folder = root / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (folder / "sub" / "config.json").write_text("{}")
    return folder


def test_manifest_lists_every_file_with_its_sha256(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    manifest = write_manifest(folder, SOURCE)
    assert sorted(manifest["files"]) == ["sub/config.json", "weights.bin"]
    assert (
        manifest["files"]["sub/config.json"]
        == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert read_manifest(folder) == manifest
    assert verify_folder(folder, SOURCE) == []


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda f: (f / "weights.bin").write_bytes(b"changed"), "weights.bin: checksum differs"),
        (lambda f: (f / "weights.bin").unlink(), "weights.bin: missing"),
        (lambda f: (f / "extra.txt").write_text("x"), "extra.txt: not in manifest"),
        (lambda f: (f / MANIFEST_NAME).unlink(), "no manifest"),
        (lambda f: (f / MANIFEST_NAME).write_text("not json"), "no manifest"),
    ],
)
def test_damaged_folders_fail_verification(tmp_path: Path, damage, problem: str) -> None:  # type: ignore[no-untyped-def]
    folder = make_folder(tmp_path)
    write_manifest(folder, SOURCE)
    damage(folder)
    assert any(problem in line for line in verify_folder(folder, SOURCE))


def test_another_source_is_not_reused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    write_manifest(folder, SOURCE)
    assert verify_folder(folder, {**SOURCE, "recipe": "test/2"}) == [
        f"{folder}: made from a different source or recipe"
    ]


def test_staged_folder_replaces_the_target_only_on_success(tmp_path: Path) -> None:
    target = make_folder(tmp_path)
    with pytest.raises(RuntimeError), staged_folder(target) as staging:
        (staging / "half.bin").write_bytes(b"x")
        raise RuntimeError("conversion failed")
    assert (target / "weights.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with staged_folder(target) as staging:
        (staging / "new.bin").write_bytes(b"x")
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_source_with_tuples_matches_its_stored_form(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    source = {"examples": [("question", "answer")]}
    write_manifest(folder, source)
    assert verify_folder(folder, source) == []
