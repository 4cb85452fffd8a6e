"""The one folder walk: `maskdetect.images.find_files` / `find_images`."""

from __future__ import annotations

import os

import pytest

from maskdetect.images import find_files, find_images


def test_finds_images_sorted_in_any_case_and_skips_hidden(tmp_path) -> None:
    for name in ("b.JPG", "sub/a.png", "sub/.hidden.png", ".cache/x.jpg", "notes.txt", "c.HEIC"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert found == ["b.JPG", "c.HEIC", "sub/a.png"]
    assert [p.name for p in find_files(tmp_path, {".txt"})] == ["notes.txt"]


def test_reports_every_entry_it_cannot_read_and_survives_a_link_loop(tmp_path) -> None:
    (tmp_path / "ok.jpg").write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()
    os.symlink(tmp_path / "missing.png", tmp_path / "dangling.png")
    os.mkfifo(tmp_path / "pipe.jpg")
    os.symlink(tmp_path, tmp_path / "loop")
    skipped: dict[str, str] = {}
    found = find_images(tmp_path, on_skip=lambda path, why: skipped.setdefault(path.name, why))
    assert [p.name for p in found] == ["ok.jpg"]
    assert skipped == {"folder.jpg": "a folder, not a file", "dangling.png": "a link to nothing",
                       "pipe.jpg": "not a regular file"}


def test_follows_a_linked_folder(tmp_path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.jpg").write_bytes(b"")
    (tmp_path / "root").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "root" / "linked")
    assert [p.name for p in find_images(tmp_path / "root")] == ["a.jpg"]


def test_a_missing_folder_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        find_images(tmp_path / "nope")
