"""Verify: bad files are reported by name with a reason and excluded; nothing crashes on them."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from data_fixtures import bomb_png, write_image

from maskdetect.data.folder import scan_folder
from maskdetect.data.verify import verify_rows, write_exclusions


def _bad_folder(root: Path) -> Path:
    good = write_image(root / "with_mask" / "good.jpg", 1, (80, 80))
    write_image(root / "without_mask" / "good2.png", 2)
    data = good.read_bytes()
    (root / "with_mask" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "with_mask" / "corrupt.jpg").write_bytes(data[:200] + b"\x00garbage" * 200)
    (root / "with_mask" / "empty.jpg").write_bytes(b"")
    (root / "with_mask" / "text.png").write_text("this is not a picture\n")
    (root / "with_mask" / "bomb.png").write_bytes(bomb_png())
    shutil.copy(good, root / "without_mask" / "copy_of_good.jpg")  # exact duplicate, other label
    return root


def test_bad_files_are_reported_by_name_and_excluded(tmp_path: Path) -> None:
    rows = scan_folder(_bad_folder(tmp_path / "f"))
    result = verify_rows(rows, workers=2)
    kept = sorted(Path(r.path).name for r in result.rows)
    assert kept == ["good.jpg", "good2.png"]
    reasons = {Path(e.path).name: e.reason for e in result.excluded}
    bad = {"truncated.jpg", "corrupt.jpg", "empty.jpg", "text.png", "bomb.png", "copy_of_good.jpg"}
    assert set(reasons) == bad
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["text.png"]
    assert "pixels" in reasons["bomb.png"]
    assert "truncated" in reasons["truncated.jpg"] or "corrupt" in reasons["truncated.jpg"]
    assert reasons["copy_of_good.jpg"].startswith("exact duplicate of")
    assert "good.jpg" in reasons["copy_of_good.jpg"]
    good = next(r for r in result.rows if r.path.endswith("good.jpg"))
    assert (good.width, good.height) == (80, 80) and len(good.dhash) == 64
    report = tmp_path / "excluded.csv"
    write_exclusions(result.excluded, report)
    with report.open() as handle:
        listed = {Path(r["path"]).name: r["reason"] for r in csv.DictReader(handle)}
    assert listed == reasons


def test_serial_and_parallel_agree_and_max_pixels_applies(tmp_path: Path) -> None:
    root = _bad_folder(tmp_path / "f")
    for seed in range(12):  # enough files for the process pool to be used
        write_image(root / "with_incorrect_mask" / f"{seed}.jpg", 100 + seed)
    rows = scan_folder(root)
    serial = verify_rows(rows, workers=1)
    parallel = verify_rows(rows, workers=2)
    assert serial == parallel
    small = verify_rows(rows, workers=1, max_pixels=70 * 70)  # good.jpg is 80x80
    assert len(serial.rows) == 14 and len(serial.excluded) == 6
    assert "good.jpg" not in [Path(r.path).name for r in small.rows]
    assert "good2.png" in [Path(r.path).name for r in small.rows]


def test_duplicate_crop_boxes_of_one_photo_keep_the_first(tmp_path: Path) -> None:
    from maskdetect.data.manifest import ManifestRow, file_sha256

    photo = write_image(tmp_path / "p.jpg", 3, (100, 100))
    sha = file_sha256(photo)
    rows = [ManifestRow(str(photo), (10, 10, 50, 50), "covered", group="p", sha256=sha),
            ManifestRow(str(photo), (60, 10, 90, 50), "covered", group="p", sha256=sha),
            ManifestRow(str(photo), (10, 10, 50, 50), "covered", group="p", sha256=sha),
            ManifestRow(str(photo), (120, 10, 150, 50), "covered", group="p", sha256=sha)]
    result = verify_rows(rows, workers=1)
    assert [r.box for r in result.rows] == [(10, 10, 50, 50), (60, 10, 90, 50)]
    assert [e.reason.split(" ")[0] for e in result.excluded] == ["exact", "box"]
