"""The boxes that match no labelled face: how many, how big, what the classifier called them, and a
contact sheet of them, so that anyone can look at what they are.

A box that matches no annotated face is a false alarm for the scores, but a look is what tells an
ear or a logo (our error) from a real face nobody labelled (the annotation's gap).
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from maskdetect.fileio import atomic_path, atomic_write_text
from maskdetect.images import ImageError, open_image
from maskdetect.labels import CLASS_COLOURS, CLASSES

if TYPE_CHECKING:
    from maskdetect.detect.evaluate import ImageOutcome

SIZE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<16", 0, 16), ("16-32", 16, 32), ("32-64", 32, 64), (">=64", 64, math.inf),
)


def unmatched(outcome: ImageOutcome) -> list[int]:
    """Indices of the outcome's detections that match no annotated face."""
    taken = {d for d in outcome.matches if d >= 0}
    return [i for i in range(len(outcome.boxes)) if i not in taken]


def _side(box: Sequence[float]) -> float:
    return math.sqrt(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def false_alarm_report(outcomes: Sequence[ImageOutcome]) -> dict:
    """Precision and unmatched boxes by the box's own size and by the class it was given.

    Sizes are sqrt(w * h) of the detection box; "per_100_photos" counts the boxes that match no
    labelled face for every 100 photos, and how many of them were called "uncovered": the false
    no-mask alarms a compliance tool must avoid.

    >>> from maskdetect.detect.evaluate import ImageOutcome
    >>> o = ImageOutcome("p.jpg", [((0, 0, 40, 40), "covered")],
    ...                  np.array([[0, 0, 40, 40], [50, 0, 90, 40]]), np.array([0.9, 0.5]),
    ...                  ["covered", "uncovered"], [0])
    >>> r = false_alarm_report([o])
    >>> r["unmatched"], r["by_class"]["uncovered"], r["per_100_photos"]["uncovered"]
    (1, {'detections': 1, 'unmatched': 1, 'precision': 0.0}, 100.0)
    """
    sizes, classes, missed = [], [], []
    for o in outcomes:
        wrong = set(unmatched(o))
        for i, box in enumerate(np.asarray(o.boxes).reshape(-1, 4)):
            sizes.append(_side(box))
            classes.append(None if o.labels is None else o.labels[i])
            missed.append(i in wrong)
    sizes_a, missed_a = np.array(sizes), np.array(missed, bool)

    def row(mask: np.ndarray) -> dict:
        count, bad = int(mask.sum()), int((mask & missed_a).sum())
        precision = round(1 - bad / count, 4) if count else 0.0
        return {"detections": count, "unmatched": bad, "precision": precision}

    report: dict = {"detections": len(sizes), "unmatched": int(missed_a.sum()), "by_size": {},
                    "box_size": "sqrt(width * height) of the detection box, in pixels"}
    for name, lo, hi in SIZE_BUCKETS:
        report["by_size"][name] = row((sizes_a >= lo) & (sizes_a < hi))
    photos = max(1, len(outcomes))
    report["per_100_photos"] = {"unmatched": round(100 * int(missed_a.sum()) / photos, 2)}
    if any(c is not None for c in classes):
        labels = np.array([c or "" for c in classes])
        report["by_class"] = {name: row(labels == name) for name in CLASSES}
        for name in CLASSES:
            report["per_100_photos"][name] = round(100 * int(((labels == name) & missed_a).sum()) / photos, 2)
    return report


def write_unmatched_sheet(
    outcomes: Sequence[ImageOutcome], path: str | Path, *, count: int = 100, seed: int = 0, tile: int = 112,
    columns: int = 10,
) -> Path:
    """A contact sheet of `count` randomly chosen boxes that match no labelled face, with a CSV beside it.

    Each tile shows the box (drawn in its class colour) with some of its surroundings and the
    annotated faces there (thin white boxes), numbered; the CSV (`<sheet>.csv`) names each number's
    photo, box, score and class, so a by-eye audit (a face nobody labelled, a second box on a face,
    a misplaced box, no face at all) can be written down next to it.

    Returns:
        The sheet's path (PNG or JPEG by its suffix).
    """
    pool = [(o, i) for o in outcomes for i in unmatched(o)]
    chosen = random.Random(seed).sample(pool, min(count, len(pool)))
    rows = max(1, math.ceil(len(chosen) / columns))
    caption = 14
    sheet = Image.new("RGB", (columns * tile, rows * (tile + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    index_rows = []
    photos: dict[str, Image.Image | None] = {}
    for n, (outcome, i) in enumerate(chosen):
        if outcome.path not in photos:
            try:
                photos[outcome.path] = open_image(outcome.path)
            except ImageError:
                photos[outcome.path] = None
        photo = photos[outcome.path]
        box = [float(v) for v in np.asarray(outcome.boxes)[i]]
        label = None if outcome.labels is None else outcome.labels[i]
        score = float(np.asarray(outcome.scores)[i])
        x, y = (n % columns) * tile, (n // columns) * (tile + caption)
        if photo is not None:
            truth = [t[0] for t in outcome.truth]
            sheet.paste(_tile(photo, box, label, tile, truth), (x, y))
        text = f"{n} {label[:3] if label else ''} {score:.2f}"
        draw.text((x + 2, y + tile + 1), text, fill=(0, 0, 0), font=font)
        index_rows.append([n, outcome.path, *(round(v, 1) for v in box), round(score, 4), label or ""])
    path = Path(path)
    kind = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    with atomic_path(path) as tmp:
        sheet.save(tmp, format=kind, quality=90)
    text = io.StringIO()
    csv.writer(text).writerows([["n", "photo", "x0", "y0", "x1", "y1", "score", "label"], *index_rows])
    atomic_write_text(path.with_suffix(".csv"), text.getvalue())
    return path


def _tile(
    photo: Image.Image, box: list[float], label: str | None, tile: int, truth: Sequence[Sequence[float]] = ()
) -> Image.Image:
    # The box with half its size of context on each side, square, its outline in the class colour;
    # the annotated faces thin and white, so a second or misplaced box shows as one.
    side = 2 * max(box[2] - box[0], box[3] - box[1], 4.0)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    region = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    crop = photo.crop(region).resize((tile, tile), Image.BILINEAR)
    scale = tile / (region[2] - region[0])
    draw = ImageDraw.Draw(crop)

    def scaled(b: Sequence[float]) -> list[float]:
        return [(b[0] - region[0]) * scale, (b[1] - region[1]) * scale,
                (b[2] - region[0]) * scale, (b[3] - region[1]) * scale]

    for face in truth:
        draw.rectangle(scaled(face), outline=(255, 255, 255), width=1)
    draw.rectangle(scaled(box), outline=CLASS_COLOURS.get(label or "", (255, 255, 255)), width=2)
    return crop
