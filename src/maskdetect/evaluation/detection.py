"""End-to-end evaluation on a Pascal VOC photo set: are the faces found, and labelled right?

Faces are matched to detections greedily by detector score at IoU >= 0.5. Face size is the
geometric mean of the annotated box's width and height (sqrt(w * h)), in pixels of the photo.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from maskdetect.data.voc_set import TruthFace, excluded_count, voc_items
from maskdetect.evaluation.false_alarms import (
    SIZE_BUCKETS,
    false_alarm_report,
    write_missed_sheet,
    write_unmatched_sheet,
)
from maskdetect.faces.nms import match_faces
from maskdetect.images import ImageError, open_image
from maskdetect.metrics import classification_report
from maskdetect.options import ModelOptions
from maskdetect.runtime import default_precision

IOU_MATCH = 0.5
LOOSE_IOU = 0.3  # recall here too tells missed faces from boxes framed unlike the annotator's



@dataclass
class ImageOutcome:
    """One photo's truth and predictions, matched."""

    path: str
    truth: list[TruthFace]
    boxes: np.ndarray  # detections N x 4
    scores: np.ndarray
    labels: list[str] | None  # predicted classes, None in detection-only mode
    matches: list[int]  # for each truth face, the index of its detection or -1
    error: str | None = None
    loose_matches: list[int] | None = None  # the same at IoU >= LOOSE_IOU: how much is localisation


def matched_outcome(
    path: str, truth: list[TruthFace], boxes: np.ndarray, scores: np.ndarray, labels: list[str] | None,
    iou: float = IOU_MATCH,
) -> ImageOutcome:
    """One photo's detections matched to its truth, at `iou` and at LOOSE_IOU."""
    truth_boxes = np.array([t[0] for t in truth]).reshape(-1, 4)
    return ImageOutcome(
        path, truth, boxes, scores, labels, match_faces(truth_boxes, boxes, scores, iou),
        loose_matches=match_faces(truth_boxes, boxes, scores, LOOSE_IOU),
    )


def evaluate_images(
    items: Iterable[tuple[Path, list[TruthFace]]],
    predict: Callable[[object], tuple[np.ndarray, np.ndarray, list[str] | None]],
    workers: int = 2,
    iou: float = IOU_MATCH,
) -> Iterator[ImageOutcome]:
    """Run `predict(image) -> (boxes, scores, labels or None)` over photos in threads; match each."""

    def one(item: tuple[Path, list[TruthFace]]) -> ImageOutcome:
        path, truth = item
        try:
            boxes, scores, labels = predict(open_image(path))
        except ImageError as err:
            nothing = [-1] * len(truth)
            return ImageOutcome(str(path), truth, np.zeros((0, 4)), np.zeros(0), None, nothing, str(err))
        return matched_outcome(str(path), truth, boxes, scores, labels, iou)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        yield from pool.map(one, items)


def summarise(outcomes: list[ImageOutcome], iou: float = IOU_MATCH) -> dict:
    """Recall (overall and by size), precision, and classification figures on matched faces."""
    sizes, found, detections, true_labels, pred_labels = [], [], 0, [], []
    loose = [d >= 0 for o in outcomes for d in (o.loose_matches or o.matches)]
    for o in outcomes:
        detections += len(o.boxes)
        for (box, label), det in zip(o.truth, o.matches, strict=True):
            sizes.append(math.sqrt((box[2] - box[0]) * (box[3] - box[1])))
            found.append(det >= 0)
            if det >= 0 and o.labels is not None:
                true_labels.append(label)
                pred_labels.append(o.labels[det])
    sizes_a, found_a = np.array(sizes), np.array(found, bool)
    matched = int(found_a.sum())
    report = {
        "images": len(outcomes),
        "unreadable_images": [o.path + ": " + o.error for o in outcomes if o.error],
        "faces": len(found),
        "detections": detections,
        "matched": matched,
        "iou_threshold": iou,
        "recall": _ratio(matched, len(found)),
        "precision": _ratio(matched, detections),
        "recall_by_size": {},
        "recall_32px_and_more": _ratio(int(found_a[sizes_a >= 32].sum()), int((sizes_a >= 32).sum())),
        f"recall_iou_{LOOSE_IOU}": _ratio(sum(loose), len(loose)),
        f"recall_32px_and_more_iou_{LOOSE_IOU}": _ratio(
            sum(f for f, z in zip(loose, sizes, strict=True) if z >= 32), int((sizes_a >= 32).sum())
        ),
        "face_size": "sqrt(width * height) of the annotated box, in pixels",
    }
    for name, lo, hi in SIZE_BUCKETS:
        in_bucket = (sizes_a >= lo) & (sizes_a < hi)
        report["recall_by_size"][name] = {
            "faces": int(in_bucket.sum()),
            "recall": _ratio(int(found_a[in_bucket].sum()), int(in_bucket.sum())),
        }
    if true_labels:
        report["classification"] = classification_report(true_labels, pred_labels, layout="evaluate-detect")
    return report


def at_threshold(outcome: ImageOutcome, threshold: float, iou: float = IOU_MATCH) -> ImageOutcome:
    """The outcome as if only detections scoring `threshold` or more had been made, matched again.

    >>> truth = [((0, 0, 10, 10), "covered")]
    >>> o = ImageOutcome("p", truth, np.array([[0, 0, 10, 10]]), np.array([0.4]), None, [0])
    >>> at_threshold(o, 0.5).matches, at_threshold(o, 0.3).matches
    ([-1], [0])
    """
    keep = np.flatnonzero(np.asarray(outcome.scores) >= threshold)
    boxes, scores = np.asarray(outcome.boxes).reshape(-1, 4)[keep], np.asarray(outcome.scores)[keep]
    labels = None if outcome.labels is None else [outcome.labels[i] for i in keep]
    matched = matched_outcome(outcome.path, outcome.truth, boxes, scores, labels, iou)
    matched.error = outcome.error  # an unreadable photo stays reported as one
    return matched


def threshold_sweep(
    outcomes: list[ImageOutcome], thresholds: Iterable[float], iou: float = IOU_MATCH
) -> list[dict]:
    """Recall and precision at each detection threshold, from one run at the lowest of them."""
    rows = []
    for threshold in sorted(thresholds):
        report = summarise([at_threshold(o, threshold, iou) for o in outcomes], iou)
        row = {"threshold": threshold}
        row.update({k: report[k] for k in ("recall", "recall_32px_and_more", "precision", "detections")})
        row[f"recall_32px_and_more_iou_{LOOSE_IOU}"] = report[f"recall_32px_and_more_iou_{LOOSE_IOU}"]
        if "classification" in report:
            row["macro_f1"] = report["classification"]["macro_f1"]
        rows.append(row)
    return rows


def box_fit(outcomes: list[ImageOutcome]) -> dict:
    """How annotated boxes sit on the detector's matched boxes: medians of the centre shift (as a
    fraction of the detector box's width/height) and of the size ratios. With the detector's raw
    boxes these are the constants that convert its boxes to VOC-like ones.
    """
    rows = []
    for o in outcomes:
        for (box, _), det in zip(o.truth, o.matches, strict=True):
            if det < 0:
                continue
            d = o.boxes[det]
            dw, dh = d[2] - d[0], d[3] - d[1]
            rows.append((
                ((box[0] + box[2]) - (d[0] + d[2])) / 2 / dw,
                ((box[1] + box[3]) - (d[1] + d[3])) / 2 / dh,
                (box[2] - box[0]) / dw,
                (box[3] - box[1]) / dh,
            ))
    if not rows:
        return {"pairs": 0}
    med = np.median(np.array(rows), axis=0)
    return {"pairs": len(rows), "dx": round(float(med[0]), 4), "dy": round(float(med[1]), 4),
            "sx": round(float(med[2]), 4), "sy": round(float(med[3]), 4)}


def paired_faces(
    items: Iterable[tuple[Path, list[TruthFace]]],
    other_items: Iterable[tuple[Path, list[TruthFace]]],
    pairs: Iterable[tuple[str, str]],
) -> list[tuple[Path, list[TruthFace], list[TruthFace]]]:
    """Two annotations of the same photos, face by face: (photo, its faces, the faces of its copy
    scaled to the photo's pixels) for each photo of `items` that `pairs` name with a copy in
    `other_items` (file names or stems; the copy may be another size). Photos with no pair are left out.
    """
    from PIL import Image

    others = {path.stem: (path, faces) for path, faces in other_items}
    partner = {Path(a).stem: Path(b).stem for a, b in pairs}
    paired = []
    for path, faces in items:
        other = others.get(partner.get(path.stem, ""))
        if other is None:
            continue
        other_path, other_faces = other
        with Image.open(path) as mine, Image.open(other_path) as theirs:
            sx, sy = mine.width / theirs.width, mine.height / theirs.height
        scaled = [((x0 * sx, y0 * sy, x1 * sx, y1 * sy), label) for (x0, y0, x1, y1), label in other_faces]
        paired.append((path, faces, scaled))
    return paired


def agreement_outcomes(
    items: Iterable[tuple[Path, list[TruthFace]]],
    other_items: Iterable[tuple[Path, list[TruthFace]]],
    pairs: Iterable[tuple[str, str]],
    iou: float = IOU_MATCH,
) -> list[ImageOutcome]:
    """Score a second annotation of the same photos as if it were the detector.

    How often two annotators' boxes agree at `iou` is the ceiling for a detector scored against
    either. `pairs` name a photo of `items` and its copy in `other_items` (file names or stems); the
    copy may be another size, and its boxes are scaled to the photo's (`paired_faces`). Photos with no
    pair are left out. The other annotation's labels stand as the predictions, so `summarise` also
    gives the label agreement.

    Raises:
        ValueError: no pair names a photo of both sets.
    """
    outcomes = []
    for path, truth, other in paired_faces(items, other_items, pairs):
        boxes = np.array([b for b, _ in other], float).reshape(-1, 4)
        labels = [label for _, label in other]
        outcomes.append(matched_outcome(str(path), truth, boxes, np.ones(len(boxes)), labels, iou))
    if not outcomes:
        raise ValueError("no pair names a photo of both annotation sets")
    return outcomes


def _ratio(num: float, den: float) -> float:
    return round(float(num) / float(den), 4) if den else 0.0


@dataclass(frozen=True, kw_only=True)
class EvaluateDetectOptions:
    """How `evaluate_detection` runs: the model, what it scores, and which photos.

    Attributes:
        model: which model and how (`ModelOptions`: bundle, detector, backend, precision, the
            candidate and face thresholds, verifier); with detection_only only the detector and
            its thresholds count.
        detection_only: no classifier: face recall and precision only.
        raw_boxes: (BlazeFace, with detection_only) score the detector's boxes before their VOC framing.
        match_iou: IoU for a detection to match an annotated face.
        exclude: image or xml names (or stems) to leave out.
        only: when given, the only image or xml names (or stems) to use.
        limit: evaluate only the first N usable annotations.
        sweep: also report recall and precision at each of these face thresholds, from one run at
            the lowest (leave `model.face_threshold` None).
        workers: photos processed at once (threads).
        unmatched_sheet: write a contact sheet of boxes that match no labelled face here (PNG or
            JPEG, a CSV naming each tile beside it).
        missed_sheet: write a contact sheet of the labelled faces of 32 px and more that no box
            matched here (PNG or JPEG, a CSV beside it).
        sheet_count: how many boxes or faces each sheet shows (chosen at random, seeded).

    >>> EvaluateDetectOptions(model=ModelOptions(detector="haar"), detection_only=True).match_iou
    0.5
    """

    model: ModelOptions = field(default_factory=ModelOptions)
    detection_only: bool = False
    raw_boxes: bool = False
    match_iou: float = IOU_MATCH
    exclude: Sequence[str] = ()
    only: Sequence[str] | None = None
    limit: int | None = None
    sweep: Sequence[float] = ()
    workers: int = 2
    unmatched_sheet: Path | None = None
    missed_sheet: Path | None = None
    sheet_count: int = 100


def evaluate_detection(voc_dir: str | Path, options: EvaluateDetectOptions | None = None) -> dict:
    """End-to-end evaluation on a Pascal VOC photo set: `summarise`'s report, and how it was made.

    Besides `summarise`'s figures the report holds voc_dir, detector, face_threshold and
    candidate_threshold, detection_only, raw_boxes, excluded (annotations left out by `exclude`),
    box_fit, seconds and model (None
    when detection_only), false_alarms (`false_alarm_report`: precision by box size and class, boxes
    that match no labelled face per 100 photos), "sweep" (`threshold_sweep`) when thresholds were
    given, and unmatched_sheet and missed_sheet when they were written.

    Raises:
        FileNotFoundError: not a VOC set, or no usable annotation in it.
        ValueError: both sweep and face_threshold given, or raw_boxes with a detector that has none.

    >>> report = evaluate_detection("voc/", EvaluateDetectOptions(sweep=(0.3, 0.5)))  # doctest: +SKIP
    >>> report["recall"], [row["precision"] for row in report["sweep"]]  # doctest: +SKIP
    (0.91, [0.62, 0.88])
    """
    options = options or EvaluateDetectOptions()
    excluded = excluded_count(voc_dir, options.exclude)
    items = voc_items(voc_dir, options.exclude, options.limit, options.only)
    model = options.model
    if options.sweep:
        if model.face_threshold is not None:
            raise ValueError("--sweep sets the face thresholds: leave --face-threshold out")
        # one run at the lowest; the others keep faces by score
        model = replace(model, face_threshold=min(options.sweep))
    predict, detector, threshold = _face_finder(options, model)
    start = time.perf_counter()
    # A bar on stderr when it is a terminal: 1,114 photos take minutes.
    outcomes = list(tqdm(evaluate_images(items, predict, options.workers, options.match_iou),
                         total=len(items), desc="photos", unit="photo", disable=None))
    report = summarise(outcomes, options.match_iou)
    report.update(
        voc_dir=str(voc_dir), detector=detector, face_threshold=threshold,
        candidate_threshold=model.candidate_threshold,
        detection_only=options.detection_only, raw_boxes=options.raw_boxes, excluded=excluded,
        box_fit=box_fit(outcomes), seconds=round(time.perf_counter() - start, 1),
        model=None if options.detection_only else str(model.model or "bundled default"),
        classifier_precision=None if options.detection_only else model.precision or default_precision(
            model.backend),
    )
    report["false_alarms"] = false_alarm_report(outcomes)
    if options.sweep:
        report["sweep"] = threshold_sweep(outcomes, options.sweep, options.match_iou)
    if options.unmatched_sheet is not None:
        sheet = write_unmatched_sheet(outcomes, options.unmatched_sheet, count=options.sheet_count)
        report["unmatched_sheet"] = str(sheet)
    if options.missed_sheet is not None:
        sheet = write_missed_sheet(outcomes, options.missed_sheet, count=options.sheet_count)
        report["missed_sheet"] = str(sheet)
    return report


def _face_finder(
    options: EvaluateDetectOptions, model: ModelOptions
) -> tuple[Callable[[object], tuple[np.ndarray, np.ndarray, list[str] | None]], str, float | None]:
    # (predict(image) -> (boxes, detection scores, labels or None) for `evaluate_images`, the
    # detector's name, the face threshold in force)
    if options.detection_only:
        from maskdetect.bundle import open_bundle
        from maskdetect.faces.detector import create_detector

        name = model.detector or open_bundle(model.model).photo_detector
        detector = create_detector(name, model.face_threshold, model.candidate_threshold)
        if options.raw_boxes and not hasattr(detector, "detect_raw"):
            raise ValueError(f"--raw-boxes needs a BlazeFace detector, not {name!r}")
        detect = detector.detect_raw if options.raw_boxes else detector.detect

        def find(image: object) -> tuple[np.ndarray, np.ndarray, None]:
            boxes, scores = detect(image)
            return boxes, scores, None

        return find, name, getattr(getattr(detector, "config", None), "threshold", model.face_threshold)
    from maskdetect.predict import Predictor

    predictor = Predictor.from_options(model)

    def find_and_classify(image: object) -> tuple[np.ndarray, np.ndarray, list[str]]:
        faces = predictor(image)
        boxes = np.array([f.box for f in faces]).reshape(-1, 4)
        return boxes, np.array([f.detection_score for f in faces]), [f.label for f in faces]

    return find_and_classify, predictor.detector.name, predictor.face_threshold


def annotator_agreement(
    voc_dir: str | Path,
    against: str | Path,
    pairs: Sequence[tuple[str, str]],
    *,
    exclude: Sequence[str] = (),
    only: Sequence[str] | None = None,
    limit: int | None = None,
    match_iou: float = IOU_MATCH,
) -> dict:
    """How well a second annotation of the same photos agrees with the first (`agreement_outcomes`).

    The report is `summarise`'s, with voc_dir, against, pairs (how many), excluded and box_fit.

    Args:
        voc_dir: the first annotation (VOC set), taken as the truth.
        against: the second annotation (VOC set), scored as if it were the detector.
        pairs: (photo in voc_dir, its copy in against), file names or stems.
        exclude, only, limit: which photos of voc_dir, as in `EvaluateDetectOptions`.
        match_iou: IoU for two boxes to match.

    Raises:
        ValueError: no pair names a photo of both sets.

    >>> annotator_agreement("a/", "b/", [("astro.jpg", "astro-small.jpg")])["recall"]  # doctest: +SKIP
    0.5
    """
    excluded = excluded_count(voc_dir, exclude)
    items = voc_items(voc_dir, exclude, limit, only)
    other = voc_items(against, only=[theirs for _, theirs in pairs])
    outcomes = agreement_outcomes(items, other, pairs, match_iou)
    report = summarise(outcomes, match_iou)
    report.update(voc_dir=str(voc_dir), against=str(against), pairs=len(pairs), excluded=excluded,
                  box_fit=box_fit(outcomes))
    return report
