"""The candidates a face verifier learns from: every box a detector proposes on labelled photos, with
the scores the detector and the classifier compute for it, and whether it is a labelled face.

A candidate is a labelled face when it is the match of one (IoU >= 0.3, greedy, best first-pass
score first), a second box when it overlaps a face that another box already matched, and no face
otherwise. The verifier learns faces against no-faces; second boxes are dropped at run time by
`verify.suppress_second_boxes`, so they take no part in the fit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdetect.data.voc_set import TruthFace
from maskdetect.faces.nms import iou_matrix, match_faces
from maskdetect.images import ImageError, open_image
from maskdetect.verify import SECOND_LOOK_COUNT, verifier_inputs

log = logging.getLogger(__name__)

MATCH_IOU = 0.3
FACE, SECOND_BOX, NO_FACE = 0, 1, 2


@dataclass
class CandidateSet:
    """Every candidate of some photos, one row each, and every labelled face (for recall).

    Attributes:
        photo: the photo index of each candidate; boxes: N x 4; first: first-pass scores;
        second: N x 2 second-look scores (zeros for a detector without them); features: N x F;
        longer_side: the photo's longer side; kind: FACE, SECOND_BOX or NO_FACE.
        truth_photo, truth_boxes: the photo index and box of every labelled face.
        landmarks: N x 5 x 2 face landmarks (RetinaFace's), or None for a detector without them.
    """

    photo: np.ndarray
    boxes: np.ndarray
    first: np.ndarray
    second: np.ndarray
    features: np.ndarray
    longer_side: np.ndarray
    kind: np.ndarray
    truth_photo: np.ndarray
    truth_boxes: np.ndarray
    photos: int
    landmarks: np.ndarray | None = None

    def columns(self, second_looks: bool = True) -> np.ndarray:
        """The verifier's input columns; with `second_looks=False` those columns at 0 (what the
        cheap first stage sees)."""
        second = self.second if second_looks else np.zeros_like(self.second)
        return verifier_inputs(self.boxes, self.first, second, self.features, self.longer_side)


def mine_candidates(predictor, items: Iterable[tuple[Path, list[TruthFace]]]) -> CandidateSet:
    """Run the predictor's detector and classifier over labelled photos and record every candidate.

    Args:
        predictor: a `Predictor` whose detector gives candidates (BlazeFace); its classifier gives
            the features, at the precision the verifier will run beside.
        items: (image path, labelled faces) of each photo (`maskdetect.data.voc_set.voc_items`).

    Raises:
        ValueError: the detector gives no candidates (it scores faces once), or no photo gave one.
    """
    detector = predictor.detector
    if not getattr(detector, "scores_candidates", False):
        raise ValueError(f"the {detector.name} detector gives no candidates to fit a verifier on")
    names = ("photo", "boxes", "first", "second", "features", "longer", "kind")
    rows: dict[str, list] = {k: [] for k in names}
    truth_photo, truth_boxes, photos, landmarks = [], [], 0, []
    for index, (path, truth) in enumerate(items):
        photos += 1
        boxes_truth = np.array([box for box, _ in truth], np.float64).reshape(-1, 4)
        truth_photo += [index] * len(boxes_truth)
        truth_boxes.append(boxes_truth)
        try:
            photo = open_image(path)
        except ImageError as error:
            log.warning("skipped: %s", error)
            continue
        found = detector.candidates(photo)
        if not len(found):
            continue
        crop = predictor.preprocessing.face_array
        batch = np.stack([crop(photo, tuple(map(float, b))) for b in found.boxes])
        _, features = predictor.classifier.logits_and_features(batch)
        rows["photo"].append(np.full(len(found), index))
        rows["boxes"].append(found.boxes)
        rows["first"].append(found.first)
        rows["second"].append(detector.second_looks(found, np.arange(len(found))))
        rows["features"].append(features)
        rows["longer"].append(np.full(len(found), max(photo.size), np.float64))
        rows["kind"].append(candidate_kinds(boxes_truth, found.boxes, found.first))
        if getattr(found, "landmarks", None) is not None:
            landmarks.append(found.landmarks)
        if photos % 50 == 0:
            log.info("%d photos mined", photos)
    if not rows["photo"]:
        raise ValueError(f"no candidate in {photos} photos: nothing to fit a verifier on")
    data = {k: np.concatenate(v) for k, v in rows.items()}
    second = data["second"].reshape(-1, SECOND_LOOK_COUNT)
    return CandidateSet(data["photo"], data["boxes"], data["first"], second, data["features"], data["longer"],
                        data["kind"], np.array(truth_photo, int),
                        np.concatenate(truth_boxes) if truth_boxes else np.zeros((0, 4)), photos,
                        np.concatenate(landmarks) if len(landmarks) == len(rows["photo"]) else None)


def candidate_kinds(truth: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """What each candidate box is: FACE (the match of a labelled face at IoU 0.3, greedy, best score
    first), SECOND_BOX (on a labelled face matched by another) or NO_FACE.

    >>> boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 0, 60, 9]])
    >>> kinds = candidate_kinds(np.array([[0, 0, 10, 10]]), boxes, np.array([0.9, 0.8, 0.7]))
    >>> kinds.tolist() == [FACE, SECOND_BOX, NO_FACE]
    True
    """
    kinds = np.full(len(boxes), NO_FACE)
    if not len(truth):
        return kinds
    matched = [m for m in match_faces(truth, boxes, scores, MATCH_IOU) if m >= 0]
    near = iou_matrix(truth, boxes).max(axis=0) >= MATCH_IOU
    kinds[near] = SECOND_BOX
    kinds[matched] = FACE
    return kinds


def operating_point(data: CandidateSet, score: np.ndarray, threshold: float,
                    suppress: tuple[float, float] = (0.3, 0.7)) -> dict[str, float]:
    """Recall (all labelled faces, and those of 32 px and more; IoU 0.3) and precision of the
    candidates scoring `threshold` or more, second boxes suppressed as the Predictor does."""
    from maskdetect.verify import suppress_second_boxes

    found_big = total_big = found = kept = 0
    for index in range(data.photos):
        truth = data.truth_boxes[data.truth_photo == index]
        rows = np.flatnonzero((data.photo == index) & (score >= threshold))
        boxes, scores = data.boxes[rows], score[rows]
        if len(rows) > 1:
            keep = suppress_second_boxes(boxes, scores, *suppress)
            boxes, scores = boxes[keep], scores[keep]
        kept += len(boxes)
        matches = np.array(match_faces(truth, boxes, scores, MATCH_IOU), int)
        big = np.sqrt(np.prod(truth[:, 2:] - truth[:, :2], axis=1)) >= 32
        found_big += int(((matches >= 0) & big).sum())
        total_big += int(big.sum())
        found += int((matches >= 0).sum())
    return {"threshold": round(float(threshold), 4), "recall_32px": round(found_big / max(1, total_big), 4),
            "recall": round(found / max(1, len(data.truth_boxes)), 4),
            "precision": round(found / max(1, kept), 4), "boxes": kept}

