"""Tiny learnable class-folder trees for the training and evaluation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from maskdetect.labels import CLASSES
from maskdetect.train.config import TrainConfig, build_config

# One colour per class, on noise: learnable in an epoch or two by a small CNN at 16-32 px.
CLASS_TINTS = {"covered": (40, 200, 60), "incorrect": (230, 160, 20), "uncovered": (200, 30, 40)}


def write_face(path: Path, label: str, rng: np.random.Generator, size: int = 32) -> None:
    noise = rng.integers(0, 80, size=(size, size, 3))
    image = np.clip(noise + np.asarray(CLASS_TINTS[label]) * 0.7, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def make_split_tree(
    root: Path, counts: dict[str, int] | None = None, seed: int = 0, classes: tuple[str, ...] = CLASSES
) -> Path:
    """root/{train,validation,holdout}/{class}/*.jpg with `counts` images per class in each split."""
    counts = counts or {"train": 12, "validation": 4, "holdout": 4}
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        for label in classes:
            for i in range(n):
                write_face(root / split / label / f"{label}_{i}.jpg", label, rng)
    return root


def fast_config(tree: Path, out: Path, **settings: object) -> TrainConfig:
    """small_cnn on 16 px faces, batches of 8, one thread, no loader workers; `settings` override."""
    base = {"data": str(tree), "out": str(out), "model": "small_cnn", "input_size": 16, "batch_size": 8,
            "workers": 0, "threads": 1}
    return build_config(base, settings)
