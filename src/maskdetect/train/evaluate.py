"""`evaluate_checkpoint`: run a checkpoint over a class-folder tree and write every figure of its quality.

Writes, into the output folder: ``metrics.json``, ``confusion_matrix.json`` and ``.png``,
``reliability.png``, ``mistakes.png`` (the most confident wrong predictions) and ``predictions.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from maskdetect.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, preprocessing_of
from maskdetect.data.manifest import split_manifest_of, subtype_lookup
from maskdetect.data.tree import tree_crop_policy
from maskdetect.faces.crop import crop_headshot
from maskdetect.fileio import atomic_write_text
from maskdetect.images import open_image
from maskdetect.labels import CLASSES
from maskdetect.metrics import classification_report, subtype_of
from maskdetect.train.augment import eval_transform
from maskdetect.train.dataset import SPLITS, FaceFolder, collate_skipping, scan_class_folders, split_folder
from maskdetect.train.distributed import pick_device
from maskdetect.train.plots import plot_confusion_matrix, plot_mistakes, plot_reliability

log = logging.getLogger(__name__)

def evaluate_checkpoint(
    checkpoint_path: str | os.PathLike,
    tree: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    split: str | None = None,
    headshot: bool = False,
    manifest: str | os.PathLike | None = None,
    batch_size: int = 64,
    workers: int = 0,
    gallery: int = 24,
    device: str = "auto",
) -> dict[str, Any]:
    """Evaluate a checkpoint on a split of a split tree, or on a plain tree of class folders.

    Args:
        checkpoint_path: a checkpoint written by `maskdetect train`.
        tree: a split tree (with `split`) or a folder of class folders (any label names).
        out_dir: where the report files go.
        split: ``train``, ``validation`` or ``holdout``; None for a plain class-folder tree.
        headshot: images are whole aligned head shots (MaskedFace-Net): crop the face first.
        manifest: an optional CSV with ``path`` and ``subtype`` columns (and ``tree_path``) for
            per-subtype accuracy; by default the tree's own ``split_manifest.csv`` when present,
            and MaskedFace-Net file names otherwise.
        batch_size, workers: inference batching.
        gallery: how many of the most confident mistakes to draw.
        device: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        The report that is also written to ``metrics.json``.

    Raises:
        CheckpointError: an unreadable checkpoint or weights of another architecture.
        ValueError / FileNotFoundError: a bad tree, split or manifest (checked before inference).
    """
    checkpoint = load_checkpoint(checkpoint_path)
    preprocessing = preprocessing_of(checkpoint)
    if tuple(preprocessing.classes) != CLASSES:
        raise CheckpointError(
            f"{checkpoint_path}: classes {list(preprocessing.classes)} are not {list(CLASSES)}"
        )
    model = model_from_checkpoint(checkpoint, str(checkpoint_path))
    folder = split_folder(tree, split)
    tree_policy = tree_crop_policy(tree)
    if tree_policy is not None and not math.isclose(tree_policy.scale, preprocessing.crop_policy.scale):
        log.warning(
            "%s: its faces were cut with crop scale %s, but %s was trained on crops of scale %s: "
            "these figures are for faces framed unlike its training",
            tree, tree_policy.scale, checkpoint_path, preprocessing.crop_policy.scale,
        )
    samples = _scan(folder)
    manifest = manifest or split_manifest_of(Path(tree), folder)
    subtypes_by_file = subtype_lookup(manifest) if manifest else None
    target_device = pick_device(device)
    model.to(target_device)

    dataset = FaceFolder(samples, eval_transform(preprocessing, headshot=headshot))
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping)
    probabilities, targets, indices = [], [], []
    with torch.inference_mode():
        for batch in loader:
            if batch is None:
                continue
            images, batch_targets, batch_indices = batch
            probabilities.append(torch.softmax(model(images.to(target_device)).float(), 1).cpu().numpy())
            targets.append(batch_targets.numpy())
            indices.append(batch_indices.numpy())
    if not probabilities:
        raise ValueError(f"{folder}: none of the {len(samples)} images could be read")
    probs, truth, kept = np.concatenate(probabilities), np.concatenate(targets), np.concatenate(indices)
    paths = [samples[i][0] for i in kept]
    subtypes = [_subtype(p, subtypes_by_file) for p in paths]
    report = classification_report(
        truth, classes=CLASSES, probabilities=probs, subtypes=subtypes if any(subtypes) else None
    )
    report.update(
        {
            "checkpoint": str(checkpoint_path),
            "arch": checkpoint["arch"],
            "tree": str(folder),
            "input_size": preprocessing.input_size,
            "crop_scale": preprocessing.crop_policy.scale,
            "tree_crop_scale": None if tree_policy is None else tree_policy.scale,
            "skipped_unreadable": len(samples) - len(kept),
        }
    )
    _write_outputs(Path(out_dir), report, probs, truth, paths, preprocessing, headshot, gallery)
    return report


def _scan(folder: Path) -> list[tuple[Path, int]]:
    try:
        return scan_class_folders(folder, require_all=False)
    except ValueError as err:
        if any((folder / name).is_dir() for name in SPLITS):
            raise ValueError(
                f"{folder} is a split tree: choose a split with --split ({', '.join(SPLITS)})"
            ) from None
        raise err


def _subtype(path: Path, lookup: dict[str, str] | None) -> str | None:
    if lookup is not None:
        found = lookup.get(os.path.realpath(path)) or lookup.get(path.name)
        if found:
            return found
    return subtype_of(path)


def _write_outputs(
    out: Path,
    report: dict[str, Any],
    probs: np.ndarray,
    truth: np.ndarray,
    paths: list[Path],
    preprocessing: Any,
    headshot: bool,
    gallery: int,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(
        out / "confusion_matrix.json",
        json.dumps(
            {"classes": list(CLASSES), "rows_true_columns_predicted": report["confusion_matrix"]}, indent=2
        )
        + "\n",
    )
    plot_confusion_matrix(
        report["confusion_matrix"],
        CLASSES,
        out / "confusion_matrix.png",
        title=f"{'/'.join(Path(report['tree']).parts[-2:])}: accuracy {report['accuracy']:.3f}",
    )
    plot_reliability(report["calibration"], out / "reliability.png")
    predicted = probs.argmax(1)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["path", "true", "predicted", "confidence", *[f"p_{c}" for c in CLASSES]])
    for path, t, p, pr in zip(paths, truth, predicted, probs, strict=True):
        writer.writerow([str(path), CLASSES[t], CLASSES[p], f"{pr[p]:.4f}", *[f"{v:.4f}" for v in pr]])
    atomic_write_text(out / "predictions.csv", rows.getvalue())
    wrong = np.flatnonzero(predicted != truth)
    worst = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:gallery]
    mistakes = []
    for i in worst:
        image = open_image(paths[i])
        if headshot:
            image = crop_headshot(image, preprocessing.crop_policy)
        mistakes.append(
            {
                "image": image.resize((preprocessing.input_size,) * 2),
                "true": CLASSES[truth[i]],
                "predicted": CLASSES[predicted[i]],
                "confidence": float(probs[i, predicted[i]]),
                "name": paths[i].name,
            }
        )
    plot_mistakes(mistakes, out / "mistakes.png")


def format_table(report: dict[str, Any]) -> str:
    """A short plain-text summary for the terminal.

    >>> print(format_table({"count": 2, "accuracy": 1.0, "macro_f1": 1.0, "ece": 0.1, "per_class": {}}))
    images 2  accuracy 1.000  macro-F1 1.000  ECE 0.100
    class       precision  recall      F1  support
    """
    lines = [
        f"images {report['count']}  accuracy {report['accuracy']:.3f}  macro-F1 {report['macro_f1']:.3f}  "
        f"ECE {report['ece']:.3f}"
    ]
    if "covered_vs_incorrect_accuracy" in report:
        lines[0] += f"  covered-vs-incorrect {report['covered_vs_incorrect_accuracy']:.3f}"
    lines.append(f"{'class':<11}{'precision':>10}{'recall':>8}{'F1':>8}{'support':>9}")
    for name, s in report["per_class"].items():
        lines.append(f"{name:<11}{s['precision']:>10.3f}{s['recall']:>8.3f}{s['f1']:>8.3f}{s['support']:>9}")
    for name, s in report.get("per_subtype", {}).items():
        lines.append(
            f"subtype {name:<20} accuracy {s['accuracy']:.3f} of {s['count']}  predicted {s['predicted']}"
        )
    return "\n".join(lines)
