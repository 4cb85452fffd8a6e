"""The ImageFolder tree: torchvision reads it, names are stable, re-runs rewrite nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from data_fixtures import make_maskedface_net, make_voc, write_image
from PIL import Image
from torchvision.datasets import ImageFolder

from maskdetect.data.folder import scan_folder
from maskdetect.data.manifest import SPLIT_MANIFEST_NAME, read_manifest, split_manifest_of, subtype_lookup
from maskdetect.data.sources import build_manifest
from maskdetect.data.split import assign_splits
from maskdetect.data.tree import MARKER, tree_crop_policy, write_split_tree
from maskdetect.data.verify import verify_rows
from maskdetect.faces.crop import CropPolicy
from maskdetect.labels import CLASSES


def _split_rows(tmp_path: Path, seed: int = 0) -> list:
    make_maskedface_net(tmp_path / "mfn", list(range(100, 130)))
    photos = {f"p{i}.jpg": [("with_mask", (10, 10, 60, 70)), ("without_mask", (100, 20, 150, 80))]
              for i in range(12)}
    make_voc(tmp_path / "voc", photos, seed=500)
    build = build_manifest(maskedface_net=[tmp_path / "mfn"], voc=[tmp_path / "voc"])
    return assign_splits(verify_rows(build.rows, workers=1).rows, seed=seed)


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_imagefolder_reads_the_tree_with_the_project_class_order(tmp_path: Path) -> None:
    rows = _split_rows(tmp_path)
    result = write_split_tree(rows, tmp_path / "root", size=64, workers=2)
    assert result.written == len(rows) == 144 and result.failed == 0
    for split in ("train", "validation", "holdout"):
        dataset = ImageFolder(str(tmp_path / "root" / split))
        assert tuple(dataset.classes) == CLASSES
        assert dataset.class_to_idx == {c: i for i, c in enumerate(CLASSES)}
        assert len(dataset) == sum(r.split == split for r in rows)
        image, _ = dataset[0]
        assert image.size == (64, 64)
    saved = read_manifest(tmp_path / "root" / SPLIT_MANIFEST_NAME)
    assert [r.split for r in saved] == [r.split for r in rows]
    for row in saved:
        assert (tmp_path / "root" / row.tree_path).is_file()
        assert row.tree_path.startswith(f"{row.split}/{row.label}/{row.source}_")
    assert len({r.tree_path for r in saved}) == len(saved)
    crop = Image.open(tmp_path / "root" / saved[0].tree_path)
    assert crop.format == "JPEG"


def test_rerun_rewrites_nothing_and_a_different_tree_needs_overwrite(tmp_path: Path) -> None:
    rows = _split_rows(tmp_path)
    root = tmp_path / "root"
    write_split_tree(rows, root, size=32, workers=1)
    before = _snapshot(root)
    again = write_split_tree(list(rows), root, size=32, workers=1)
    assert again.written == 0 and again.unchanged == len(rows)
    assert _snapshot(root) == before
    other = assign_splits(rows, seed=1)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_split_tree(other, root, size=32)
    write_split_tree(other, root, size=32, overwrite=True, workers=1)
    saved = read_manifest(root / SPLIT_MANIFEST_NAME)
    assert [r.split for r in saved] == [r.split for r in other]
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*.jpg")}
    assert on_disk == {r.tree_path for r in saved}  # nothing of the old tree left


def test_the_tree_records_the_crop_policy_its_faces_were_cut_with(tmp_path: Path) -> None:
    rows = _split_rows(tmp_path)
    write_split_tree(rows, tmp_path / "wide", size=32, workers=1, policy=CropPolicy(scale=1.6))
    assert tree_crop_policy(tmp_path / "wide") == CropPolicy(scale=1.6)
    assert tree_crop_policy(tmp_path) is None  # no marker: a folder made by hand
    (tmp_path / "wide" / MARKER).write_text('{"crop_policy": {"scale": "wide"}}')
    with pytest.raises(ValueError, match=MARKER):
        tree_crop_policy(tmp_path / "wide")


def test_link_modes_for_whole_file_faces(tmp_path: Path) -> None:
    for label, seed in (("with_mask", 1), ("with_incorrect_mask", 2), ("without_mask", 3)):
        for k in range(4):
            write_image(tmp_path / "f" / label / f"{k}.png", seed * 10 + k)
    rows = assign_splits(scan_folder(tmp_path / "f"), seed=0, holdout=0.25, validation=0.34)
    for link in ("hard", "sym", "copy"):
        root = tmp_path / link
        write_split_tree(rows, root, link=link, workers=1)
        saved = read_manifest(root / SPLIT_MANIFEST_NAME)
        for row in saved:
            placed = root / row.tree_path
            assert placed.suffix == ".png"
            assert placed.read_bytes() == Path(row.path).read_bytes()
            assert placed.is_symlink() == (link == "sym")
            same_inode = os.stat(placed).st_ino == os.stat(row.path).st_ino
            assert same_inode == (link in ("hard", "sym"))
        assert len(ImageFolder(str(root / "train"))) == sum(r.split == "train" for r in rows)


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hard, sym, copy"):
        write_split_tree([], tmp_path / "t", link="soft")
    with pytest.raises(ValueError, match="crop size"):
        write_split_tree([], tmp_path / "t", size=2)


def test_hard_link_falls_back_to_a_copy_across_file_systems(tmp_path: Path, monkeypatch) -> None:
    import errno

    for label, seed in (("with_mask", 1), ("with_incorrect_mask", 2), ("without_mask", 3)):
        write_image(tmp_path / "f" / label / "0.png", seed)
    rows = [r.replace(split="train") for r in scan_folder(tmp_path / "f")]

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    write_split_tree(rows, tmp_path / "root", link="hard", workers=1)
    for row in read_manifest(tmp_path / "root" / SPLIT_MANIFEST_NAME):
        placed = tmp_path / "root" / row.tree_path
        assert placed.read_bytes() == Path(row.path).read_bytes()
        assert os.stat(placed).st_ino != os.stat(row.path).st_ino
    assert not list((tmp_path / "root").rglob("*.part"))


def test_the_split_manifest_is_named_and_read_in_one_place(tmp_path: Path) -> None:
    for label, seed in (("with_mask", 1), ("with_incorrect_mask", 2), ("without_mask", 3)):
        for k in range(2):
            write_image(tmp_path / "f" / label / f"{k}.png", seed * 10 + k)
    rows = assign_splits(scan_folder(tmp_path / "f"), seed=0, holdout=0.34, validation=0.34)
    rows = [r.replace(subtype="correct") if r.label == "covered" else r for r in rows]
    root = tmp_path / "tree"
    write_split_tree(rows, root, link="copy", workers=1)
    split = next(s for s in ("train", "validation", "holdout") if (root / s).is_dir())
    assert split_manifest_of(root / split, root) == root / SPLIT_MANIFEST_NAME
    lookup = subtype_lookup(root / SPLIT_MANIFEST_NAME)
    covered = [r for r in read_manifest(root / SPLIT_MANIFEST_NAME) if r.label == "covered"]
    assert covered and all(lookup[os.path.realpath(root / r.tree_path)] == "correct" for r in covered)
    assert len(lookup) == 3 * len(covered)  # by tree file, source file and bare name
    (tmp_path / "bad.csv").write_text("file,kind\n")
    with pytest.raises(ValueError, match=r"bad\.csv: not a manifest, missing column\(s\) path, subtype"):
        subtype_lookup(tmp_path / "bad.csv")
