"""Is each candidate box a face? The face verifier: a logistic regression over what the detector and
the classifier already compute for every candidate.

Its inputs are the detector's first-pass and second-look scores, the box's size (in pixels and as a
share of the photo), and the features the classifier's head reads. Ears with a mask loop, hands,
backs of heads and logos score low there, where the detector alone scored them like faces. It is
fitted for one classifier (the file records that checkpoint's sha256), one detector and one
precision, and lives in a model bundle (`maskdetect.bundle`, `verifiers/<detector>.<precision>.json`);
`maskdetect fit-verifier` makes it (`maskdetect.bundler.fit`). How it was made and what it does: the
docs' detector page, "False faces".
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdetect.faces.nms import iou_matrix
from maskdetect.fileio import atomic_write_text

log = logging.getLogger(__name__)

FORMAT = "maskdetect-face-verifier-1"
SCORE_COLUMNS = ("first_score", "log_side", "side_share", "second_full", "second_short")
SECOND_LOOK_COUNT = sum(name.startswith("second_") for name in SCORE_COLUMNS)
_FIRST_SECOND_LOOK = SCORE_COLUMNS.index("second_full")
_SECOND_LOOKS = slice(_FIRST_SECOND_LOOK, _FIRST_SECOND_LOOK + SECOND_LOOK_COUNT)  # their input columns


# The largest file a verifier of 65,536 features (and its first stage) can need, as `save` writes it.
MAX_FILE_BYTES = 16 << 20


class VerifierError(ValueError):
    """A verifier file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class FirstStage:
    """A cheaper verifier that runs first: the same inputs with the second looks left at 0.

    Candidates it scores below `low` or above `high` are settled by its probability alone; only those
    in between cost the detector its second looks and go to the full verifier. Fitted on the same
    photos, `low` and `high` are the quantiles that leave few of their faces and non-faces outside.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    low: float
    high: float

    def probability(self, columns: np.ndarray) -> np.ndarray:
        return _logistic(columns, self.mean, self.scale, self.coef, self.intercept)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": self.intercept, "low": self.low, "high": self.high}


def _logistic(columns: np.ndarray, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray,
              intercept: float) -> np.ndarray:
    if columns.shape[1] != len(coef):
        raise ValueError(f"the verifier weighs {len(coef)} inputs, got {columns.shape[1]} (another "
                         "classifier's features?)")
    z = ((columns - mean) / scale) @ coef + intercept
    return 1.0 / (1.0 + np.exp(-np.clip(z, -80, 80)))


@dataclass(frozen=True)
class FaceVerifier:
    """Face probability of candidate boxes: sigmoid(((x - mean) / scale) . coef + intercept).

    Attributes:
        checkpoint_sha256: the classifier whose features it weighs.
        mean, scale, coef: one value per input column (SCORE_COLUMNS, then the features).
        intercept: the regression's intercept.
        threshold: the face probability a box needs to be kept.
        suppress_iou, suppress_inside: a kept box is dropped as a second box on a face when it
            overlaps a likelier box by this IoU, or lies this share of its area inside it.
    """

    checkpoint_sha256: str
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float
    suppress_iou: float = 0.3
    suppress_inside: float = 0.7
    first_stage: FirstStage | None = None
    # A candidate the detector scores this high or more is a face whatever the regression says: fitted
    # on small faces, the regression can turn down large, sure ones it never saw (None: no floor).
    trust_score: float | None = None

    @property
    def feature_count(self) -> int:
        return len(self.coef) - len(SCORE_COLUMNS)

    def face_probability(
        self, boxes: np.ndarray, first: np.ndarray, second: np.ndarray, features: np.ndarray,
        photo_size: tuple[int, int],
    ) -> np.ndarray:
        """The probability that each candidate is a face.

        Args:
            boxes: N x 4 final boxes (pixels); first: N first-pass scores; second: N x 2 second-look
                scores (full range, short range); features: N x F classifier features.
            photo_size: (width, height) of the photo.

        >>> v = FaceVerifier("x", np.zeros(6), np.ones(6), np.array([1.0, 0, 0, 0, 0, 0]), 0.0, 0.5)
        >>> v.face_probability(np.array([[0, 0, 10, 10]]), np.array([0.0]), np.zeros((1, 2)),
        ...                    np.zeros((1, 1)), (100, 100)).tolist()
        [0.5]
        """
        columns = verifier_inputs(boxes, first, second, features, max(photo_size))
        return _logistic(columns, self.mean, self.scale, self.coef, self.intercept)

    def decide(
        self, boxes: np.ndarray, first: np.ndarray, features: np.ndarray, photo_size: tuple[int, int],
        second_looks: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """The face probability of each candidate, asking for second looks only where needed.

        Args:
            second_looks: given candidate indices, their N x 2 second-look scores. Without a first
                stage every candidate needs them; with one, only those it cannot settle.

        >>> v = FaceVerifier("x", np.zeros(6), np.ones(6), np.array([1.0, 0, 0, 0, 0, 0]), 0.0, 0.5)
        >>> v.decide(np.array([[0, 0, 10, 10]]), np.array([0.0]), np.zeros((1, 1)), (100, 100),
        ...          lambda rows: np.zeros((len(rows), 2))).tolist()
        [0.5]
        """
        count = len(boxes)
        stage = self.first_stage
        if stage is None:
            face = self.face_probability(boxes, first, second_looks(np.arange(count)), features, photo_size)
            return trusted(face, first, self.trust_score)
        # One set of input columns: the first stage reads them with the second looks at 0, the full
        # verifier the unsure rows once their second looks are filled in.
        columns = verifier_inputs(boxes, first, np.zeros((count, SECOND_LOOK_COUNT)), features,
                                  max(photo_size))
        face = stage.probability(columns)
        unsure = np.flatnonzero((face >= stage.low) & (face <= stage.high))
        if len(unsure):
            columns[unsure, _SECOND_LOOKS] = second_looks(unsure)
            face[unsure] = _logistic(columns[unsure], self.mean, self.scale, self.coef, self.intercept)
        return trusted(face, first, self.trust_score)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "checkpoint_sha256": self.checkpoint_sha256, "columns": list(SCORE_COLUMNS),
                "features": self.feature_count, "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept, "threshold": self.threshold,
                "suppress_iou": self.suppress_iou, "suppress_inside": self.suppress_inside,
                **({"first_stage": self.first_stage.to_dict()} if self.first_stage else {}),
                **({"trust_score": self.trust_score} if self.trust_score is not None else {})}

    def save(self, path: str | os.PathLike, **provenance: object) -> None:
        """Write the verifier as JSON (atomically), with free-form provenance (data, command)."""
        atomic_write_text(path, json.dumps({**self.to_dict(), "provenance": provenance}, indent=1) + "\n")


def verifier_inputs(
    boxes: np.ndarray, first: np.ndarray, second: np.ndarray, features: np.ndarray,
    longer_side: float | np.ndarray,
) -> np.ndarray:
    """The verifier's input columns (SCORE_COLUMNS, then the features), one row per candidate: the
    one recipe for fitting it (`maskdetect.bundler.fit`) and for running it.

    Args:
        longer_side: the photo's longer side in pixels, or one per candidate.

    >>> verifier_inputs(np.array([[0, 0, 10, 40]]), [0.5], np.zeros((1, 2)), np.ones((1, 1)), 100).round(3)
    array([[0.5  , 2.996, 0.2  , 0.   , 0.   , 1.   ]])
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.sqrt(np.clip(width, 0, None) * np.clip(height, 0, None))
    share = side / np.asarray(longer_side, np.float64)
    return np.column_stack([
        np.asarray(first, np.float64), np.log(np.maximum(side, 1.0)), share,
        np.asarray(second, np.float64).reshape(-1, SECOND_LOOK_COUNT), np.asarray(features, np.float64),
    ])


def load_verifier(path: str | os.PathLike) -> FaceVerifier:
    """Read and check a verifier file.

    Raises:
        VerifierError: not JSON, another format, or numbers of the wrong count or kind.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise VerifierError(f"{path}: {size:,} bytes, more than a face verifier can be "
                                f"({MAX_FILE_BYTES:,} at most)")
        data = json.loads(path.read_text(encoding="utf-8"))
    # ValueError: JSON's own errors, and an integer of more digits than Python converts
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        if isinstance(err, VerifierError):
            raise
        raise VerifierError(f"{path}: not a readable face verifier ({type(err).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VerifierError(f"{path}: not a face verifier (expected format {FORMAT!r})")
    try:
        arrays = [_numbers(data, key) for key in ("mean", "scale", "coef")]
        numbers = [_number(data, key)
                   for key in ("intercept", "threshold", "suppress_iou", "suppress_inside")]
        sha = data["checkpoint_sha256"]
        if not isinstance(sha, str) or not 0 < len(sha) <= 128:
            raise ValueError("'checkpoint_sha256' must be the classifier's sha256")
        features = data.get("features", -1)
        if isinstance(features, bool) or not isinstance(features, int):
            raise ValueError("'features' must be a whole number")
        if data.get("columns", list(SCORE_COLUMNS)) != list(SCORE_COLUMNS):  # inputs in another order
            raise ValueError(f"'columns' must be {list(SCORE_COLUMNS)}")
        trust = None if data.get("trust_score") is None else _number(data, "trust_score")
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as err:
        raise VerifierError(f"{path}: a face verifier with a missing or bad field ({err})") from None
    if not 0 < features <= 1 << 16:
        raise VerifierError(f"{path}: 'features' must be a count between 1 and 65536, got {features}")
    count = len(SCORE_COLUMNS) + features
    _check_weights(path, arrays, count, "mean, scale and coef", "every scale")
    if not math.isfinite(numbers[0]):
        raise VerifierError(f"{path}: intercept must be a finite number, got {numbers[0]}")
    if not all(0 < n <= 1 for n in numbers[1:]):  # NaN fails this too
        raise VerifierError(f"{path}: threshold and suppression shares must lie in (0, 1]")
    first_stage = _first_stage(path, data.get("first_stage"), count)
    if trust is not None and not 0 < trust <= 1:
        raise VerifierError(f"{path}: trust_score must lie in (0, 1], got {trust!r}")
    return FaceVerifier(sha, *arrays, *numbers, first_stage=first_stage, trust_score=trust)


def trusted(face: np.ndarray, first: np.ndarray, trust_score: float | None) -> np.ndarray:
    """Face probabilities with the detector's sure candidates (score >= trust_score) lifted to at
    least their score.

    >>> trusted(np.array([0.1, 0.1]), np.array([0.95, 0.5]), 0.9).tolist()
    [0.95, 0.1]
    """
    if trust_score is None:
        return face
    first = np.asarray(first, np.float64)
    return np.where(first >= trust_score, np.maximum(face, first), face)


def _first_stage(path: Path, data: object, count: int) -> FirstStage | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise VerifierError(f"{path}: first_stage must be an object with mean, scale, coef, intercept, "
                            "low and high")
    try:
        arrays = [_numbers(data, key) for key in ("mean", "scale", "coef")]
        intercept, low, high = (_number(data, key) for key in ("intercept", "low", "high"))
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as err:
        raise VerifierError(f"{path}: a first stage with a missing or bad field ({err})") from None
    _check_weights(path, arrays, count, "the first stage's mean, scale and coef",
                   "every scale of the first stage")
    if not (math.isfinite(intercept) and 0 <= low <= high <= 1):
        raise VerifierError(f"{path}: the first stage needs 0 <= low <= high <= 1, got {low} and {high}")
    return FirstStage(*arrays, intercept, low, high)


def _number(data: dict, key: str) -> float:
    # A JSON number: float() would also take "0.5" and true.
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key!r} must be a number")
    return float(value)  # OverflowError for an integer past float's range


def _numbers(data: dict, key: str) -> np.ndarray:
    # A flat list of JSON numbers (np.asarray would also take strings and nested lists).
    values = data[key]
    if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{key!r} must be a list of numbers")
    return np.asarray(values, np.float64)


def _check_weights(path: Path, arrays: list[np.ndarray], count: int, names: str, scales: str) -> None:
    # mean, scale, coef: `count` finite numbers each, every scale positive
    if any(a.shape != (count,) for a in arrays) or not all(np.isfinite(a).all() for a in arrays):
        raise VerifierError(f"{path}: {names} must each be {count} finite numbers")
    if (arrays[1] <= 0).any():
        raise VerifierError(f"{path}: {scales} must be positive")


def suppress_second_boxes(boxes: np.ndarray, scores: np.ndarray, iou: float, inside: float) -> np.ndarray:
    """Indices (ascending) of the boxes kept when each box, likeliest first, drops every less likely
    box overlapping it by `iou` or more, or lying `inside` or more of its own area within it.

    >>> suppress_second_boxes(np.array([[0, 0, 10, 10], [2, 2, 8, 8], [20, 0, 30, 10]]),
    ...                       np.array([0.9, 0.8, 0.7]), 0.3, 0.7).tolist()
    [0, 2]
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    iou_of = iou_matrix(boxes, boxes)
    width, height = np.clip(boxes[:, 2] - boxes[:, 0], 0, None), np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    # intersection = IoU x union, and union = area_a + area_b - intersection
    areas = width * height
    inter = iou_of * (areas[:, None] + areas[None, :]) / (1.0 + iou_of)
    inside_of = inter / np.maximum(areas[:, None], 1e-9)  # row box's share inside the column box
    kept: list[int] = []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if not any(iou_of[i, j] >= iou or inside_of[i, j] >= inside for j in kept):
            kept.append(int(i))
    return np.array(sorted(kept), int)
