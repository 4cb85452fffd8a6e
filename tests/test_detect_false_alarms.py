"""evaluate-detect's false alarms: boxes matching no labelled face, by size and class, and their sheet."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from maskdetect.evaluation.detection import ImageOutcome, matched_outcome
from maskdetect.evaluation.false_alarms import (
    false_alarm_report,
    unmatched,
    write_missed_sheet,
    write_unmatched_sheet,
)


def _outcome(tmp_path, name: str = "a.png") -> ImageOutcome:
    photo = tmp_path / name
    Image.new("RGB", (200, 100), "grey").save(photo)
    truth = [((10, 10, 50, 50), "covered"), ((60, 10, 100, 50), "uncovered")]
    boxes = np.array([[10, 10, 50, 50], [60, 12, 100, 52], [150, 60, 160, 70], [120, 10, 190, 80]], float)
    labels = ["covered", "uncovered", "uncovered", "incorrect"]
    return matched_outcome(str(photo), truth, boxes, np.array([0.9, 0.8, 0.5, 0.4]), labels, 0.5)


def test_unmatched_boxes_counted_by_size_class_and_per_photo(tmp_path) -> None:
    outcome = _outcome(tmp_path)
    assert unmatched(outcome) == [2, 3]
    report = false_alarm_report([outcome, _outcome(tmp_path, "b.png")])
    assert (report["detections"], report["unmatched"]) == (8, 4)
    assert report["by_size"]["<16"] == {"detections": 2, "unmatched": 2, "precision": 0.0}
    assert report["by_size"][">=64"] == {"detections": 2, "unmatched": 2, "precision": 0.0}
    assert report["by_size"]["32-64"] == {"detections": 4, "unmatched": 0, "precision": 1.0}
    assert report["by_class"]["uncovered"] == {"detections": 4, "unmatched": 2, "precision": 0.5}
    assert report["per_100_photos"] == {"unmatched": 200.0, "covered": 0.0, "incorrect": 100.0,
                                        "uncovered": 100.0}


def test_detection_only_report_has_no_classes(tmp_path) -> None:
    outcome = _outcome(tmp_path)
    outcome.labels = None
    report = false_alarm_report([outcome])
    assert "by_class" not in report and report["per_100_photos"] == {"unmatched": 200.0}


def test_sheet_shows_each_unmatched_box_once_and_names_it(tmp_path) -> None:
    sheet = write_unmatched_sheet([_outcome(tmp_path)], tmp_path / "sheet.png", count=10, tile=50, columns=4)
    image = Image.open(sheet)
    assert image.size == (4 * 50, 1 * (50 + 14))
    with open(sheet.with_suffix(".csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["x0"], r["label"]) for r in rows) == [("120.0", "incorrect"), ("150.0", "uncovered")]
    assert all(r["photo"].endswith("a.png") for r in rows)


def test_missed_sheet_shows_the_labelled_faces_no_box_matched_from_32_px(tmp_path) -> None:
    photo = tmp_path / "m.png"
    Image.new("RGB", (300, 200), "grey").save(photo)
    truth = [((10, 10, 50, 50), "covered"),  # found
             ((60, 10, 110, 60), "incorrect"),  # missed: its only box overlaps it too little
             ((150, 100, 200, 150), "uncovered"),  # missed, nothing near
             ((250, 10, 270, 30), "covered")]  # missed but 20 px: not what the 32 px recall counts
    boxes = np.array([[10, 10, 50, 50], [90, 30, 140, 80]], float)
    outcome = matched_outcome(str(photo), truth, boxes, np.array([0.9, 0.8]), ["covered", "covered"], 0.3)
    sheet = write_missed_sheet([outcome], tmp_path / "missed.png", tile=40, columns=5)
    assert Image.open(sheet).size == (5 * 40, 40 + 14)
    with open(sheet.with_suffix(".csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["x0"], r["label"], r["size"]) for r in rows) == [("150.0", "uncovered", "50.0"),
                                                                      ("60.0", "incorrect", "50.0")]
