"""Box overlap, weighted non-maximum suppression and box reframing, in plain numpy.

Weighted NMS (BlazeFace's own, as MediaPipe runs it) averages the boxes of one cluster by score
instead of keeping only the best one: steadier boxes, and the natural way to merge the same face
found in overlapping tiles and at several scales.
"""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `a` (N x 4) with every box in `b` (M x 4).

    Boxes are (x0, y0, x1, y1).

    >>> iou_matrix(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [5, 5, 6, 6]])).round(3).tolist()
    [[0.333, 0.0]]
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Merge overlapping boxes: each cluster becomes its weighted mean box and its best score.

    Args:
        boxes: N x 4 array of (x0, y0, x1, y1).
        scores: N scores.
        iou_threshold: boxes overlapping the cluster's seed box by more than this join the cluster.
        weights: N weights of the boxes' geometry; None weighs by score. Clusters are seeded from the
            heaviest box, so a box trusted more for where it is leads its cluster; the cluster's score
            is still its best score.

    Returns:
        (boxes, scores) of the merged detections, best score first.

    >>> b, s = weighted_nms(np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]]),
    ...                     np.array([0.9, 0.9, 0.6]))
    >>> b.tolist(), s.tolist()
    ([[1.0, 0.0, 11.0, 10.0], [50.0, 50.0, 60.0, 60.0]], [0.9, 0.6])
    """
    if not 0.0 < iou_threshold < 1.0:
        raise ValueError(f"iou_threshold must be between 0 and 1, got {iou_threshold}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    weights = scores if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(weights) != len(scores):
        raise ValueError(f"{len(weights)} weights but {len(scores)} scores")
    remaining = np.argsort(-weights, kind="stable")
    kept_boxes, kept_scores = [], []
    while remaining.size:
        seed = remaining[0]
        overlap = iou_matrix(boxes[seed], boxes[remaining])[0]
        members = remaining[overlap > iou_threshold]
        members = members if members.size else remaining[:1]
        w = weights[members]
        kept_boxes.append((boxes[members] * w[:, None]).sum(axis=0) / max(w.sum(), 1e-12))
        kept_scores.append(scores[members].max())
        remaining = remaining[overlap <= iou_threshold]
        remaining = remaining[remaining != seed]
    if not kept_boxes:
        return np.zeros((0, 4)), np.zeros(0)
    kept_boxes, kept_scores = np.array(kept_boxes), np.array(kept_scores)
    order = np.argsort(-kept_scores, kind="stable")
    return kept_boxes[order], kept_scores[order]


def nested_boxes(boxes: np.ndarray, scores: np.ndarray, share: float) -> np.ndarray:
    """Which boxes to keep when one face got two boxes, one inside the other.

    Weighted NMS leaves a loose box and a tight box on the same face apart when their IoU is low
    (a box inside one twice its width has an IoU of 1/4), yet two faces cannot sit one inside the
    other and both be seen: of two boxes of which `share` or more of the smaller one's area lies
    inside the larger, only the higher-scored one is kept (the first on a tie).

    Returns:
        A boolean mask over the boxes.

    >>> nested_boxes(np.array([[0, 0, 40, 40], [5, 5, 25, 25], [50, 0, 90, 40]]),
    ...              np.array([0.6, 0.8, 0.7]), 0.8).tolist()
    [False, True, True]
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keep = np.ones(len(boxes), bool)
    if len(boxes) < 2:
        return keep
    ix0 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    iy0 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    ix1 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    iy1 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    nested = inter >= share * np.maximum(np.minimum(area[:, None], area[None, :]), 1e-12)
    for i in np.argsort(-scores, kind="stable"):
        if keep[i]:
            later = nested[i] & (np.arange(len(boxes)) != i)
            keep[later & ~_before(i, scores)] = False
    return keep


def _before(i: int, scores: np.ndarray) -> np.ndarray:
    # The boxes that rank before box i (higher score, or the same score and an earlier index).
    index = np.arange(len(scores))
    return (scores > scores[i]) | ((scores == scores[i]) & (index < i))


def reframe_boxes(boxes: np.ndarray, dx: float, dy: float, sx: float, sy: float) -> np.ndarray:
    """Move and scale boxes about their centres: a detector's framing onto the VOC annotators'.

    The new box has centre (cx + dx * w, cy + dy * h) and size (sx * w, sy * h), where cx, cy, w, h
    describe the old box.

    >>> reframe_boxes(np.array([[0.0, 0.0, 10.0, 10.0]]), 0.0, 0.1, 0.5, 1.0).tolist()
    [[2.5, 1.0, 7.5, 11.0]]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + dx * w
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + dy * h
    hw, hh = sx * w / 2, sy * h / 2
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to the photo (a copy; every box is kept, so they stay aligned with their scores).

    >>> clip_boxes(np.array([[-5.0, 2, 8, 9]]), 6, 6).tolist()
    [[0.0, 2.0, 6.0, 6.0]]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return boxes


def match_faces(
    truth_boxes: np.ndarray, boxes: np.ndarray, scores: np.ndarray, iou: float = 0.5
) -> list[int]:
    """Greedy matching, best detection first: each truth face to at most one detection.

    >>> match_faces(np.array([[0, 0, 10, 10], [20, 0, 30, 10]]), np.array([[1, 0, 11, 10]]), np.array([0.9]))
    [0, -1]
    """
    matches = [-1] * len(truth_boxes)
    if not len(truth_boxes) or not len(boxes):
        return matches
    overlap = iou_matrix(truth_boxes, boxes)
    for det in np.argsort(-np.asarray(scores), kind="stable"):
        free = [t for t in range(len(truth_boxes)) if matches[t] < 0 and overlap[t, det] >= iou]
        if free:
            matches[max(free, key=lambda t: overlap[t, det])] = int(det)
    return matches
