"""PNG figures: confusion matrix, reliability diagram, worst mistakes, learning curves."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from PIL import Image

from maskdetect.fileio import atomic_path

matplotlib.use("Agg")  # files only, never a window; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _save(figure: plt.Figure, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | os.PathLike, title: str = ""
) -> None:
    """Counts with row-normalised shading (each true class's recall reads along the diagonal)."""
    counts = np.asarray(matrix)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(4.6, 4.0))
    axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            axes.text(
                j,
                i,
                f"{counts[i, j]}\n{rates[i, j]:.0%}",
                ha="center",
                va="center",
                color="white" if rates[i, j] > 0.6 else "black",
                fontsize=9,
            )
    axes.set_xticks(range(len(classes)), classes)
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title or "confusion matrix")
    _save(figure, path)


def plot_reliability(calibration: dict[str, Any], path: str | os.PathLike) -> None:
    """Accuracy against confidence per bin; the gap to the diagonal is the miscalibration."""
    bins = [b for b in calibration["bins"] if b["count"]]
    figure, axes = plt.subplots(figsize=(4.6, 4.0))
    axes.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    width = calibration["bins"][0]["high"] - calibration["bins"][0]["low"]
    axes.bar(
        centres,
        [b["accuracy"] for b in bins],
        width=width * 0.9,
        color="tab:blue",
        alpha=0.8,
        label="accuracy",
    )
    # The marker is the bin's mean confidence: its gap to the bar top is the miscalibration.
    axes.plot(
        centres,
        [b["confidence"] for b in bins],
        "_",
        color="tab:orange",
        markersize=14,
        markeredgewidth=2.5,
        label="mean confidence",
    )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence")
    axes.set_ylabel("accuracy")
    axes.set_title(f"reliability (ECE {calibration['ece']:.3f})")
    axes.legend(loc="upper left", fontsize=8)
    _save(figure, path)


def plot_mistakes(mistakes: Sequence[dict[str, Any]], path: str | os.PathLike, columns: int = 6) -> None:
    """A grid of face images titled with true and predicted class and the confidence.

    Args:
        mistakes: dicts with ``image`` (PIL), ``true``, ``predicted``, ``confidence`` and ``name``.
    """
    rows = max(1, -(-len(mistakes) // columns))
    figure, grid = plt.subplots(rows, columns, figsize=(columns * 1.9, rows * 2.45), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, item in zip(grid.flat, mistakes, strict=False):
        image: Image.Image = item["image"]
        axes.imshow(image)
        # The file name wrapped over lines, never cut: it is how the mistake is found again.
        name = "\n".join(textwrap.wrap(str(item["name"]), 24, break_on_hyphens=False))
        axes.set_title(
            f"true {item['true']}\npred {item['predicted']} {item['confidence']:.2f}\n{name}",
            fontsize=6.5,
        )
    if not mistakes:
        grid.flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    figure.suptitle("most confident mistakes", fontsize=10)
    _save(figure, path)


def plot_learning_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Loss and accuracy per epoch, train beside validation, from a run's metrics.jsonl records."""
    xs = [e["epoch"] for e in history]
    figure, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_ax.plot(xs, [e["train_loss"] for e in history], "o-", label="train")
    loss_ax.plot(xs, [e["val_loss"] for e in history], "o-", label="validation")
    loss_ax.set(title="loss", xlabel="epoch")
    acc_ax.plot(xs, [e["train_accuracy"] for e in history], "o-", label="train")
    acc_ax.plot(xs, [e["val_accuracy"] for e in history], "o-", label="validation")
    acc_ax.set(title="accuracy", xlabel="epoch", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.25, 1.5
        ax.legend()
        ax.grid(alpha=0.3)
    figure.tight_layout()
    _save(figure, path)
