"""Classification metrics from predicted probabilities: plain NumPy, no model in sight."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskdetect.labels import CLASSES, MASKEDFACE_SUBTYPES

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


def per_class_scores(matrix: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class (0 where undefined)."""
    scores = {}
    for i, name in enumerate(classes):
        tp = matrix[i, i]
        predicted, actual = matrix[:, i].sum(), matrix[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
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
    probabilities: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str] = CLASSES,
    subtypes: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Every figure `maskdetect evaluate` reports.

    Macro-F1 averages the classes that occur in the truth (a set with no uncovered faces is not
    punished for a class it cannot score). ``covered_vs_incorrect_accuracy`` is the accuracy on the
    covered and incorrect faces when the model chooses between those two classes only.

    >>> report = classification_report(np.eye(3)[[0, 1, 2, 2]], np.array([0, 1, 2, 1]))
    >>> report["accuracy"], report["confusion_matrix"][1]
    (0.75, [0, 1, 1])
    """
    targets = np.asarray(targets)
    predictions = probabilities.argmax(1)
    matrix = confusion_matrix(targets, predictions, len(classes))
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
    if "covered" in classes and "incorrect" in classes:
        pair = [classes.index("covered"), classes.index("incorrect")]
        mask = np.isin(targets, pair)
        if mask.any():
            chosen = np.asarray(pair)[probabilities[mask][:, pair].argmax(1)]
            report["covered_vs_incorrect_accuracy"] = float((chosen == targets[mask]).mean())
    report["calibration"] = calibration(probabilities, targets)
    report["ece"] = report["calibration"]["ece"]
    if subtypes is not None:
        report["per_subtype"] = _per_subtype(predictions, targets, subtypes, classes)
    return report


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
