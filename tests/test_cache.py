"""The resized cache: sizes, colours kept, corrupt files skipped by name, re-runs skip, params rebuild."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from maskdetect.cli import main
from maskdetect.data.cache import RECORD_FILE, build_cache, cached_name, target_size
from maskdetect.data.tree import MARKER, tree_crop_policy
from maskdetect.faces.crop import CropPolicy


def _tree(root):
    """A small split tree: two JPEGs (one 1024 px), a PNG, and a truncated JPEG."""
    (root / "train/covered").mkdir(parents=True)
    (root / "train/incorrect").mkdir(parents=True)
    (root / "validation/uncovered").mkdir(parents=True)
    (root / "holdout/uncovered").mkdir(parents=True)
    Image.new("RGB", (1024, 1024), (200, 30, 40)).save(root / "train/covered/a.jpg", quality=95)
    Image.new("RGB", (400, 300), (20, 160, 60)).save(root / "train/incorrect/b.png")
    Image.new("RGB", (300, 500), (10, 20, 220)).save(root / "validation/uncovered/c.jpg", quality=95)
    good = (root / "train/covered/a.jpg").read_bytes()
    (root / "train/covered/broken.jpg").write_bytes(good[:300])
    return root


def test_cache_resizes_keeps_colour_and_skips_corrupt(tmp_path):
    src, dest = _tree(tmp_path / "src"), tmp_path / "cache"
    report = build_cache(src, dest, size=64, jobs=2, progress=False)
    assert report.written == 3 and report.up_to_date == 0
    assert list(report.failed) == ["train/covered/broken.jpg"]
    assert "broken.jpg" in report.failed["train/covered/broken.jpg"]
    sizes = {name: Image.open(dest / name).size for name in
             ["train/covered/a.jpg", "train/incorrect/b.png.jpg", "validation/uncovered/c.jpg"]}
    assert sizes == {"train/covered/a.jpg": (64, 64), "train/incorrect/b.png.jpg": (85, 64),
                     "validation/uncovered/c.jpg": (64, 107)}
    mean = np.asarray(Image.open(dest / "train/covered/a.jpg")).reshape(-1, 3).mean(0)
    assert np.allclose(mean, (200, 30, 40), atol=4)
    assert not (dest / "train/covered/broken.jpg").exists()
    assert [p.name for p in dest.rglob("*.part")] == []
    assert (dest / "holdout/uncovered").is_dir()  # empty class folders kept: same class indices


def test_the_copy_keeps_the_trees_crop_policy(tmp_path):
    src = _tree(tmp_path / "src")
    build_cache(src, tmp_path / "plain", size=32, jobs=1, progress=False)
    assert tree_crop_policy(tmp_path / "plain") is None  # a tree made by hand records none
    (src / MARKER).write_text(json.dumps({"crop_policy": CropPolicy(scale=1.6).to_dict()}))
    build_cache(src, tmp_path / "cache", size=32, jobs=1, progress=False)
    assert tree_crop_policy(tmp_path / "cache") == CropPolicy(scale=1.6)


def test_rerun_skips_up_to_date_and_redoes_changed(tmp_path):
    src, dest = _tree(tmp_path / "src"), tmp_path / "cache"
    build_cache(src, dest, size=48, jobs=1, progress=False)
    again = build_cache(src, dest, size=48, jobs=1, progress=False)
    assert (again.written, again.up_to_date) == (0, 3)
    assert list(again.failed) == ["train/covered/broken.jpg"]  # reported again, not silently forgotten
    Image.new("RGB", (200, 100), (0, 0, 0)).save(src / "train/covered/a.jpg")
    stat = (src / "train/covered/a.jpg").stat()
    os.utime(src / "train/covered/a.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = build_cache(src, dest, size=48, jobs=1, progress=False)
    assert (changed.written, changed.up_to_date) == (1, 2)
    assert Image.open(dest / "train/covered/a.jpg").size == (96, 48)
    (dest / "validation/uncovered/c.jpg").unlink()  # a deleted cached file is redone
    assert build_cache(src, dest, size=48, jobs=1, progress=False).written == 1
    other = build_cache(src, dest, size=32, mode="square", jobs=1, progress=False)
    assert other.written == 3  # new parameters: everything redone
    assert Image.open(dest / "validation/uncovered/c.jpg").size == (32, 32)
    assert '"size": 32' in (dest / RECORD_FILE).read_text()


def test_moved_source_leaves_no_stale_copy_across_splits(tmp_path):
    src, dest = _tree(tmp_path / "src"), tmp_path / "cache"
    build_cache(src, dest, size=40, jobs=1, progress=False)
    (src / "train/uncovered").mkdir()
    (src / "validation/uncovered/c.jpg").rename(src / "train/uncovered/c.jpg")  # a re-split moved it
    report = build_cache(src, dest, size=40, jobs=1, progress=False)
    assert (report.written, report.removed) == (1, 1)
    assert not (dest / "validation/uncovered/c.jpg").exists()
    assert (dest / "train/uncovered/c.jpg").is_file()
    (src / "train/uncovered/c.jpg").write_bytes(b"now broken")  # a good copy must not outlive it
    report = build_cache(src, dest, size=40, jobs=1, progress=False)
    assert "train/uncovered/c.jpg" in report.failed
    assert not (dest / "train/uncovered/c.jpg").exists()
    (src / "train/incorrect/b.png").unlink()  # removed under new parameters too
    assert build_cache(src, dest, size=50, jobs=1, progress=False).removed == 1
    assert not (dest / "train/incorrect/b.png.jpg").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_cache(tmp_path / "nowhere", tmp_path / "c")
    (tmp_path / "src").mkdir()
    with pytest.raises(ValueError, match="shorter, square"):
        build_cache(tmp_path / "src", tmp_path / "c", mode="stretch")
    with pytest.raises(ValueError, match="inside the source"):
        build_cache(tmp_path / "src", tmp_path / "src" / "cache")
    with pytest.raises(ValueError, match="--jobs must be at least 1, got 0"):  # 0 is not "every core"
        build_cache(tmp_path / "src", tmp_path / "c", jobs=0)
    assert target_size(1024, 768, 160, "shorter") == (213, 160)
    assert cached_name("a/b.jpeg") == "a/b.jpeg"


def test_cli_on_real_maskedface_net_images(shared_data, tmp_path, capsys):
    sample = sorted((shared_data / "maskedface-net-sample" / "IMFD").rglob("*.jpg"))[:4]
    assert len(sample) == 4, "maskedface-net-sample should hold IMFD images"
    folder = tmp_path / "tree" / "train" / "incorrect"
    folder.mkdir(parents=True)
    for path in sample:
        os.symlink(path, folder / path.name)  # split trees are links, not copies
    shutil.copy(sample[0], tmp_path / "tree" / "train" / "incorrect" / "copy.jpg")
    code = main(["data", "cache", str(tmp_path / "tree"), str(tmp_path / "cache"), "--size", "96",
                 "--jobs", "1", "--no-progress"])
    assert code == 0
    assert "5 images written" in capsys.readouterr().out
    cached = Image.open(tmp_path / "cache" / "train" / "incorrect" / sample[1].name)
    assert cached.size == (96, 96)
    original = Image.open(sample[1]).convert("RGB").resize((96, 96))
    difference = np.abs(np.asarray(cached, float) - np.asarray(original, float)).mean()
    assert difference < 8, difference  # the same picture, not just the same size
