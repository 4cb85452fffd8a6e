"""The one VOC reader: each caller's policy pinned, and a bad <size> is that file's error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from data_fixtures import make_voc

from maskdetect.data.voc import scan_voc, voc_policy
from maskdetect.data.voc_set import DETECT_VOC_POLICY, load_voc_faces, voc_items
from maskdetect.data.voc_xml import VocPolicy, read_annotation
from maskdetect.synth.sources import SYNTH_VOC_POLICY, iter_source_faces

# One photo (200x150): a small bare face, a bare face past the right border, a masked face.
PHOTO = {"a.jpg": [("without_mask", (10, 10, 20, 20)), ("without_mask", (150, 40, 230, 100)),
                   ("with_mask", (40, 40, 90, 100))]}


def test_each_caller_reads_voc_with_its_policy() -> None:
    prepare = VocPolicy(min_face=16, clamp=True, unknown_labels="skip", photo_folders="image_folder")
    detect = VocPolicy(min_face=0, clamp=False, unknown_labels="raise", photo_folders="image_folder")
    synth = VocPolicy(min_face=0, clamp=False, unknown_labels="skip", photo_folders="anywhere")
    assert (voc_policy(16), DETECT_VOC_POLICY, SYNTH_VOC_POLICY) == (prepare, detect, synth)


def test_prepare_clamps_and_drops_small_faces_detect_and_synth_keep_them_as_annotated(tmp_path: Path) -> None:
    root = make_voc(tmp_path / "v", PHOTO)
    rows, report = scan_voc(root, min_face=16)
    assert [(r.label, r.box) for r in rows] == [("uncovered", (150.0, 40.0, 200.0, 100.0)),
                                                 ("covered", (40.0, 40.0, 90.0, 100.0))]
    assert (report.too_small, report.clamped) == (1, 1)
    _, faces = load_voc_faces(root / "annotations" / "a.xml", root / "images")
    assert [box for box, _ in faces] == [(10, 10, 20, 20), (150, 40, 230, 100), (40, 40, 90, 100)]
    counts: dict[str, int] = {}
    synth = [(f.box, f.index) for f in iter_source_faces(root, counts)]
    assert synth == [((10, 10, 20, 20), 0), ((150, 40, 230, 100), 1)]
    assert counts == {"not_uncovered_covered": 1}


def test_unknown_labels_are_skipped_by_prepare_and_synth_but_void_the_file_for_detect(tmp_path: Path) -> None:
    root = make_voc(tmp_path / "v", {"a.jpg": [("face_shield", (10, 10, 60, 60))],
                                     "b.jpg": [("without_mask", (10, 10, 60, 60))]})
    assert scan_voc(root)[1].unknown_labels == {"face_shield": 1}
    counts: dict[str, int] = {}
    assert len(list(iter_source_faces(root, counts))) == 1 and counts == {"unknown_label": 1}
    assert [Path(p).name for p, _ in voc_items(root)] == ["b.jpg"]


def test_synth_alone_finds_photos_beside_the_xml(tmp_path: Path) -> None:
    root = make_voc(tmp_path / "v", PHOTO, images="annotations")
    assert len(list(iter_source_faces(root))) == 2
    with pytest.raises(FileNotFoundError, match="images folder"):
        scan_voc(root)


@pytest.mark.parametrize("size", ["inf", "1e400", "-inf"])
def test_an_infinite_size_is_that_files_error_not_an_overflow(
    tmp_path: Path, size: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_voc(tmp_path / "v", {"a.jpg": [("without_mask", (10, 10, 60, 60))],
                                     "b.jpg": [("without_mask", (10, 10, 60, 60))]})
    xml = root / "annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<width>200</width>", f"<width>{size}</width>"))
    with pytest.raises(ValueError, match=r"a\.xml: VOC <size> is not a finite number"):
        read_annotation(xml)
    rows, report = scan_voc(root)
    assert [Path(r.path).name for r in rows] == ["b.jpg"] and "a.xml" in report.problems[0]
    with caplog.at_level(logging.WARNING):
        assert [Path(p).name for p, _ in voc_items(root)] == ["b.jpg"]
    assert "a.xml" in caplog.text
    counts: dict[str, int] = {}
    assert [f.photo.name for f in iter_source_faces(root, counts)] == ["b.jpg"]
    assert counts == {"bad_annotation": 1}


def test_a_nan_or_junk_size_still_means_no_stated_size(tmp_path: Path) -> None:
    root = make_voc(tmp_path / "v", {"a.jpg": []})
    xml = root / "annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<width>200</width>", "<width>nan</width>"))
    assert read_annotation(xml).size == (0, 0)


def test_two_photos_sharing_an_annotations_stem_are_refused_unless_it_names_one(tmp_path: Path) -> None:
    import shutil

    from data_fixtures import voc_xml

    face = [("with_mask", (20, 20, 80, 80))]
    root = make_voc(tmp_path / "voc", {"a.jpg": face})
    shutil.copy(root / "images" / "a.jpg", root / "images" / "a.png")
    # <filename> names a file that is not there: pairing a.jpg or a.png would be a guess
    (root / "annotations" / "a.xml").write_text(voc_xml("a.jpeg", (200, 150), face))
    rows, report = scan_voc(root)
    assert rows == []
    assert any("a.jpg and a.png both match a.xml" in problem for problem in report.problems)
    # <filename> names one of them exactly: that one, whatever the order of the files
    (root / "annotations" / "a.xml").write_text(voc_xml("a.png", (200, 150), face))
    rows, _ = scan_voc(root)
    assert [Path(row.path).name for row in rows] == ["a.png"]
