"""Each source scanned into manifest rows, in the real layouts, and the manifest CSV itself."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from data_fixtures import make_ffhq_thumbnails, make_maskedface_net, make_voc, write_image

from maskdetect.data.ffhq import scan_ffhq
from maskdetect.data.folder import scan_folder
from maskdetect.data.manifest import file_sha256, read_manifest, write_manifest
from maskdetect.data.maskedface_net import scan_maskedface_net
from maskdetect.data.sources import build_manifest
from maskdetect.data.voc import scan_voc
from maskdetect.faces.crop import aligned_headshot_box
from maskdetect.labels import CLASSES


def test_maskedface_net_labels_subtypes_groups_and_boxes(tmp_path: Path) -> None:
    root = make_maskedface_net(tmp_path / "mfn", [1014, 2077])
    rows = list(scan_maskedface_net(root))
    assert len(rows) == 8
    kinds = {(Path(r.path).name, r.label, r.subtype) for r in rows}
    assert ("01014_Mask.jpg", "covered", "correct") in kinds
    assert ("01014_Mask_Mouth_Chin.jpg", "incorrect", "nose_exposed") in kinds
    assert ("02077_Mask_Nose_Mouth.jpg", "incorrect", "chin_exposed") in kinds
    assert ("02077_Mask_Chin.jpg", "incorrect", "nose_mouth_exposed") in kinds
    assert {r.group for r in rows} == {"ffhq-01014", "ffhq-02077"}
    row = rows[0]
    assert (row.width, row.height) == (64, 64)
    assert row.box == aligned_headshot_box(64, 64)
    assert row.sha256 == file_sha256(row.path)
    assert row.source == "maskedface_net"


def test_ffhq_thumbnails_share_groups_with_maskedface_net(tmp_path: Path) -> None:
    rows = list(scan_ffhq(make_ffhq_thumbnails(tmp_path / "ffhq", [1014, 5])))
    assert [r.label for r in rows] == ["uncovered", "uncovered"]
    assert {r.group for r in rows} == {"ffhq-01014", "ffhq-00005"}
    mfn = list(scan_maskedface_net(make_maskedface_net(tmp_path / "mfn", [1014])))
    assert {r.group for r in mfn} <= {r.group for r in rows}
    assert rows[0].box == aligned_headshot_box(128, 128)


def test_voc_both_vocabularies_clamp_skip_and_report(tmp_path: Path) -> None:
    andrew = make_voc(tmp_path / "andrew", {
        "a.jpg": [("with_mask", (10, 10, 60, 70)), ("mask_weared_incorrect", (100, 20, 140, 70)),
                  ("without_mask", (5, 5, 12, 12))],  # 7 px: too small
        "b.png": [("without_mask", (150, 100, 230, 170))],  # cut by the border (200x150): clamped
    })
    ilc = make_voc(tmp_path / "ilc", {
        "c.jpg": [("with_incorrect_mask", (20, 20, 80, 90)), ("with_mask", (50, 50, 50, 80))],  # degenerate
        "d.jpg": [("face_shield", (20, 20, 80, 90))],  # unknown label
    }, images="JPEGImages")
    rows, report = scan_voc(andrew, min_face=16)
    assert [r.label for r in rows] == ["covered", "incorrect", "uncovered"]
    assert report.too_small == 1 and report.clamped == 1
    assert rows[2].box == (150.0, 100.0, 200.0, 150.0)
    assert rows[0].group == rows[1].group == "andrew/a" != rows[2].group
    assert rows[0].content_id != rows[1].content_id and rows[0].sha256 == rows[1].sha256
    rows, report = scan_voc(ilc, min_face=16)
    assert [r.label for r in rows] == ["incorrect"]
    assert len(report.degenerate) == 1 and report.unknown_labels == {"face_shield": 1}
    assert scan_voc(andrew, min_face=0)[1].too_small == 0


def test_voc_finds_the_image_when_the_xml_names_another_extension(tmp_path: Path) -> None:
    root = make_voc(tmp_path / "v", {"x.jpg": [("with_mask", (10, 10, 60, 70))]})
    (root / "images" / "x.jpg").rename(root / "images" / "x.PNG")  # xml still says x.jpg
    write_image(root / "images" / "y.jpeg", 5)  # PNG bytes under a JPEG name is fine too
    rows, report = scan_voc(root)
    assert [Path(r.path).name for r in rows] == ["x.PNG"] and not report.problems


def test_voc_corrupt_photo_with_a_non_numeric_size_still_scans(tmp_path: Path) -> None:
    # The header is unreadable, so the xml's size is read; junk there must not end the whole scan.
    root = make_voc(tmp_path / "v", {"x.jpg": [("with_mask", (10, 10, 60, 70))]})
    (root / "images" / "x.jpg").write_bytes(b"not an image")
    xml = root / "annotations" / "x.xml"
    xml.write_text(xml.read_text().replace("<width>200</width>", "<width>wide</width>"))
    rows, _ = scan_voc(root)
    assert [(r.width, r.height) for r in rows] == [(0, 0)]


def test_folder_of_class_named_subfolders(tmp_path: Path) -> None:
    write_image(tmp_path / "f" / "with_mask" / "1.jpg", 1)
    write_image(tmp_path / "f" / "Without_Mask" / "sub" / "2.png", 2)
    write_image(tmp_path / "f" / "mask_weared_incorrect" / "3.jpg", 3)
    (tmp_path / "f" / "with_mask" / "notes.txt").write_text("not an image")
    rows = scan_folder(tmp_path / "f")
    assert sorted((Path(r.path).name, r.label) for r in rows) == [
        ("1.jpg", "covered"), ("2.png", "uncovered"), ("3.jpg", "incorrect")]
    assert all(r.box is None for r in rows) and len({r.group for r in rows}) == 3
    write_image(tmp_path / "f" / "dogs" / "4.jpg", 4)
    with pytest.raises(ValueError, match="dogs"):
        scan_folder(tmp_path / "f")


def test_missing_inputs_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    for source in ("voc", "maskedface_net", "ffhq", "folder"):
        with pytest.raises(FileNotFoundError, match="nowhere"):
            build_manifest(**{source: [missing]})
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        read_manifest(missing)


def test_manifest_csv_round_trip_and_pandas(tmp_path: Path) -> None:
    make_maskedface_net(tmp_path / "mfn", [7])
    make_voc(tmp_path / "voc", {"a.jpg": [("with_mask", (10, 10, 60, 70))]})
    build = build_manifest(maskedface_net=[tmp_path / "mfn"], voc=[tmp_path / "voc"])
    out = write_manifest(build.rows, tmp_path / "m.csv")
    assert read_manifest(out) == build.rows
    frame = pd.read_csv(out)
    assert len(frame) == 5 and set(frame["source"]) == {"maskedface_net", "voc"}
    assert {"path", "x0", "label", "subtype", "group", "sha256", "content_id", "width"} <= set(frame.columns)


def test_prepare_training_and_the_explain_summary_read_class_folders_alike(tmp_path: Path) -> None:
    from maskdetect.explain.summary import labelled_images
    from maskdetect.train.dataset import scan_class_folders

    root = tmp_path / "f"
    write_image(root / "with_mask" / "1.jpg", 1)
    write_image(root / "without_mask" / "deep" / "2.PNG", 2)
    write_image(root / "mask_weared_incorrect" / "3.jpg", 3)
    write_image(root / "without_mask" / ".4.jpg", 4)  # hidden: left out by every reader
    write_image(root / ".trash" / "5.jpg", 5)
    expected = [("mask_weared_incorrect/3.jpg", "incorrect"), ("with_mask/1.jpg", "covered"),
                ("without_mask/deep/2.PNG", "uncovered")]
    prepared = [(Path(r.path).relative_to(root.resolve()).as_posix(), r.label) for r in scan_folder(root)]
    samples = scan_class_folders(root, require_all=True)
    trained = [(p.relative_to(root).as_posix(), CLASSES[i]) for p, i in samples]
    explained = [(p.relative_to(root).as_posix(), label) for p, label in labelled_images(root)]
    assert prepared == trained == explained == expected
