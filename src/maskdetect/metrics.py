"""Classification metrics, the one module behind `evaluate` and `evaluate-detect`: plain NumPy.

No torch and no pipeline imports, so `train` and `detect` both read it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from maskdetect.labels import CLASSES, MASKEDFACE_SUBTYPES

REPORT_LAYOUTS: tuple[str, ...] = ("evaluate", "evaluate-detect")

# Longest suffix first: "_Mask_Mouth_Chin" must win over "_Mask".
_SUFFIXES = sorted(MASKEDFACE_SUBTYPES, key=len, reverse=True)


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts[true, predicted].

    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (targets, predictions), 1)
    return matrix


def per_class_scores(
    matrix: np.ndarray, classes: Sequence[str], digits: int | None = None
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class (0 where undefined).

    With `digits`, precision and recall are rounded first and F1 is computed from the rounded
    values, then rounded (the way `evaluate-detect` has always reported them).

    >>> per_class_scores(np.array([[1, 0], [1, 1]]), ["a", "b"], digits=4)["a"]
    {'precision': 0.5, 'recall': 1.0, 'f1': 0.6667, 'support': 1}
    """
    scores = {}
    for i, name in enumerate(classes):
        tp = matrix[i, i]
        predicted, actual = matrix[:, i].sum(), matrix[i, :].sum()
        precision = float(tp / predicted) if predicted else 0.0
        recall = float(tp / actual) if actual else 0.0
        if digits is not None:
            precision, recall = round(precision, digits), round(recall, digits)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[name] = {
            "precision": precision,
            "recall": recall,
            "f1": float(f1) if digits is None else round(f1, digits),
            "support": int(actual),
        }
    return scores


def calibration(probabilities: np.ndarray, targets: np.ndarray, bins: int = 15) -> dict[str, Any]:
    """Expected calibration error of the top-class confidence, and the reliability diagram's bins.

    >>> round(calibration(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]), bins=10)["ece"], 3)
    0.35
    """
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        acc = float(correct[inside].mean()) if n else 0.0
        conf = float(confidence[inside].mean()) if n else 0.0
        ece += n / max(len(targets), 1) * abs(acc - conf)
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": n,
                "accuracy": acc,
                "confidence": conf,
            }
        )
    return {"ece": float(ece), "bins": rows}


def subtype_of(path: str | Path) -> str | None:
    """MaskedFace-Net's way of wearing the mask, from a file name (None for other sources).

    >>> subtype_of("IMFD/01000/01014_Mask_Mouth_Chin.jpg")
    'nose_exposed'
    >>> subtype_of("photo_3.jpg") is None
    True
    """
    stem = Path(path).stem
    for suffix in _SUFFIXES:
        if stem.endswith("_" + suffix):
            return MASKEDFACE_SUBTYPES[suffix][1]
    return None


def classification_report(
    truth: Sequence[int] | Sequence[str] | np.ndarray,
    predicted: Sequence[int] | Sequence[str] | np.ndarray | None = None,
    classes: Sequence[str] = CLASSES,
    *,
    probabilities: np.ndarray | None = None,
    subtypes: Sequence[str | None] | None = None,
    layout: Literal["evaluate", "evaluate-detect"] = "evaluate",
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (rows: truth).

    Macro-F1 averages the classes that occur in the truth (a set with no uncovered faces is not
    punished for a class it cannot score). The two layouts are the files the two commands write:

    - ``"evaluate"`` (`maskdetect evaluate`): ``count``, ``accuracy``, ``macro_f1``, ``per_class``,
      ``confusion_matrix``, ``classes``; with `probabilities` also ``covered_vs_incorrect_accuracy``
      (the accuracy on covered and incorrect faces when the model chooses between those two only),
      ``calibration`` and ``ece``; with `subtypes`, ``per_subtype``.
    - ``"evaluate-detect"``: ``faces``, ``accuracy``, ``macro_f1``, ``per_class`` and
      ``confusion`` ({classes, rows_truth_columns_predicted}), figures rounded to 4 digits.

    Args:
        truth: the true classes, as indices into `classes` or as class names.
        predicted: the predicted classes, likewise; None to take the argmax of `probabilities`.
        classes: the class names, in index order.
        probabilities: N x classes predicted probabilities (``"evaluate"`` only).
        subtypes: MaskedFace-Net subtype of each face, or None where it has none.
        layout: ``"evaluate"`` or ``"evaluate-detect"``.

    Raises:
        ValueError: an unknown layout, or neither `predicted` nor `probabilities`.

    >>> report = classification_report(np.array([0, 1, 2, 1]), probabilities=np.eye(3)[[0, 1, 2, 2]])
    >>> report["accuracy"], report["confusion_matrix"][1]
    (0.75, [0, 1, 1])
    >>> detect = classification_report(["covered", "uncovered"], ["covered"] * 2, layout="evaluate-detect")
    >>> detect["accuracy"], detect["confusion"]["rows_truth_columns_predicted"][0]
    (0.5, [1, 0, 0])
    """
    if layout not in REPORT_LAYOUTS:
        raise ValueError(f"layout must be one of {REPORT_LAYOUTS}, got {layout!r}")
    if predicted is None:
        if probabilities is None:
            raise ValueError("classification_report needs `predicted` or `probabilities`, got neither")
        predicted = np.asarray(probabilities).argmax(1)
    targets, predictions = _indices(truth, classes), _indices(predicted, classes)
    matrix = confusion_matrix(targets, predictions, len(classes))
    if layout == "evaluate-detect":
        return _detect_layout(matrix, classes)
    per_class = per_class_scores(matrix, classes)
    present = [name for name in classes if per_class[name]["support"] > 0]
    report: dict[str, Any] = {
        "count": len(targets),
        "accuracy": float((predictions == targets).mean()) if len(targets) else 0.0,
        "macro_f1": float(np.mean([per_class[name]["f1"] for name in present])) if present else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "classes": list(classes),
    }
    if probabilities is not None:
        report.update(_probability_figures(np.asarray(probabilities), targets, classes))
    if subtypes is not None:
        report["per_subtype"] = _per_subtype(predictions, targets, subtypes, classes)
    return report


def _indices(values: Sequence[int] | Sequence[str] | np.ndarray, classes: Sequence[str]) -> np.ndarray:
    values = list(values) if not isinstance(values, np.ndarray) else values
    if len(values) and isinstance(values[0], str):
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({v for v in values if v not in index})
        if unknown:
            raise ValueError(f"unknown classes {unknown}; choices: {list(classes)}")
        return np.array([index[v] for v in values], dtype=np.int64)
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _detect_layout(matrix: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    per_class = per_class_scores(matrix, classes, digits=4)
    # Macro-F1 from each present class's F1 before its own rounding, as evaluate-detect always did.
    f1s = []
    for name in classes:
        p, r = per_class[name]["precision"], per_class[name]["recall"]
        if per_class[name]["support"]:
            f1s.append(2 * p * r / (p + r) if p and r else 0.0)
        per_class[name] = {k: per_class[name][k] for k in ("support", "precision", "recall", "f1")}
    total = int(matrix.sum())
    return {
        "faces": total,
        "accuracy": round(float(np.trace(matrix)) / total, 4) if total else 0.0,
        "macro_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0,
        "per_class": per_class,
        "confusion": {"classes": list(classes), "rows_truth_columns_predicted": matrix.tolist()},
    }


def _probability_figures(
    probabilities: np.ndarray, targets: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    if "covered" in classes and "incorrect" in classes:
        pair = [list(classes).index("covered"), list(classes).index("incorrect")]
        mask = np.isin(targets, pair)
        if mask.any():
            chosen = np.asarray(pair)[probabilities[mask][:, pair].argmax(1)]
            figures["covered_vs_incorrect_accuracy"] = float((chosen == targets[mask]).mean())
    figures["calibration"] = calibration(probabilities, targets)
    figures["ece"] = figures["calibration"]["ece"]
    return figures


def _per_subtype(
    predictions: np.ndarray, targets: np.ndarray, subtypes: Sequence[str | None], classes: Sequence[str]
) -> dict[str, dict[str, Any]]:
    result = {}
    names = np.array([s or "" for s in subtypes])
    for name in sorted(set(names) - {""}):
        inside = names == name
        predicted = np.bincount(predictions[inside], minlength=len(classes))
        result[name] = {
            "count": int(inside.sum()),
            "accuracy": float((predictions[inside] == targets[inside]).mean()),
            "predicted": {c: int(predicted[i]) for i, c in enumerate(classes)},
        }
    return result
