"""The boxes that match no labelled face: how many, how big, what the classifier called them, and a
contact sheet of them, so that anyone can look at what they are; and a sheet of the labelled faces
no box matched, for the same look at recall.

A box that matches no annotated face is a false alarm for the scores, but a look is what tells an
ear or a logo (our error) from a real face nobody labelled (the annotation's gap).
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from maskdetect.fileio import atomic_path, atomic_write_text
from maskdetect.images import ImageError, open_image
from maskdetect.labels import CLASS_COLOURS, CLASSES

if TYPE_CHECKING:
    from maskdetect.evaluation.detection import ImageOutcome

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

    >>> from maskdetect.evaluation.detection import ImageOutcome
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
    entries = [
        (o.path, [float(v) for v in np.asarray(o.boxes)[i]], None if o.labels is None else o.labels[i],
         float(np.asarray(o.scores)[i]), [t[0] for t in o.truth])
        for o, i in chosen
    ]
    return write_sheet(entries, path, "score", tile, columns)


def write_missed_sheet(
    outcomes: Sequence[ImageOutcome], path: str | Path, *, min_side: float = 32.0, count: int = 100,
    seed: int = 0, tile: int = 112, columns: int = 10,
) -> Path:
    """A contact sheet of annotated faces of `min_side` px and more that no box matched (`count` of
    them at random when there are more), with a CSV beside it: the other half of a recall figure.

    Each tile shows the annotated face in its class colour and the boxes found around it (thin white,
    below the match overlap or on another face); the CSV names each number's photo, box, size
    (sqrt(width * height)) and annotated class, so the misses can be sorted by eye: a face the
    detector does not see, one whose box missed the overlap, or one hardly visible.
    """
    pool = [(o, t) for o in outcomes for t, d in zip(o.truth, o.matches, strict=True)
            if d < 0 and _side(t[0]) >= min_side]
    chosen = random.Random(seed).sample(pool, min(count, len(pool)))
    entries = [(o.path, [float(v) for v in t[0]], t[1], _side(t[0]), [list(b) for b in np.asarray(o.boxes)])
               for o, t in chosen]
    return write_sheet(entries, path, "size", tile, columns)


# A sheet's tile: photo, the box drawn in its class colour, that class, the number captioned (score or
# size), the boxes drawn thin and white around it.
SheetEntry = tuple[str, list[float], "str | None", float, Sequence[Sequence[float]]]


def write_sheet(
    entries: Sequence[SheetEntry], path: str | Path, value: str, tile: int = 112, columns: int = 10,
    images: Mapping[str, Image.Image] | None = None,
) -> Path:
    """A numbered contact sheet of boxes, each with its surroundings, and a CSV naming each tile.

    Args:
        entries: (photo, box, class or None, number, other boxes) per tile.
        value: "score" (the number captioned with two decimals) or a size ("size": captioned in px);
            the CSV's column for the number.
        images: photos already in memory (a video's frames), by the name their entries give; any other
            photo is read from the path its entry gives.
    """
    rows = max(1, math.ceil(len(entries) / columns))
    caption = 14
    sheet = Image.new("RGB", (columns * tile, rows * (tile + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    index_rows = []
    photos: dict[str, Image.Image | None] = dict(images or {})
    for n, (photo_path, box, label, number, others) in enumerate(entries):
        if photo_path not in photos:
            try:
                photos[photo_path] = open_image(photo_path)
            except ImageError:
                photos[photo_path] = None
        photo = photos[photo_path]
        x, y = (n % columns) * tile, (n // columns) * (tile + caption)
        if photo is not None:
            sheet.paste(_tile(photo, box, label, tile, others), (x, y))
        shown = f"{number:.2f}" if value == "score" else f"{number:.0f}px"
        text = f"{n} {label[:3] if label else ''} {shown}"
        draw.text((x + 2, y + tile + 1), text, fill=(0, 0, 0), font=font)
        index_rows.append([n, photo_path, *(round(v, 1) for v in box), round(number, 4), label or ""])
    path = Path(path)
    kind = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    with atomic_path(path) as tmp:
        sheet.save(tmp, format=kind, quality=90)
    text = io.StringIO()
    csv.writer(text).writerows([["n", "photo", "x0", "y0", "x1", "y1", value, "label"], *index_rows])
    atomic_write_text(path.with_suffix(".csv"), text.getvalue())
    return path


def _tile(
    photo: Image.Image, box: list[float], label: str | None, tile: int, others: Sequence[Sequence[float]] = ()
) -> Image.Image:
    # The box with half its size of context on each side, square, its outline in the class colour;
    # the other boxes thin and white (the annotated faces around a false alarm, the boxes found
    # around a missed face), so a second or misplaced box shows as one.
    side = 2 * max(box[2] - box[0], box[3] - box[1], 4.0)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    region = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    crop = photo.crop(region).resize((tile, tile), Image.BILINEAR)
    scale = tile / (region[2] - region[0])
    draw = ImageDraw.Draw(crop)

    def scaled(b: Sequence[float]) -> list[float]:
        return [(b[0] - region[0]) * scale, (b[1] - region[1]) * scale,
                (b[2] - region[0]) * scale, (b[3] - region[1]) * scale]

    for other in others:
        draw.rectangle(scaled(other), outline=(255, 255, 255), width=1)
    draw.rectangle(scaled(box), outline=CLASS_COLOURS.get(label or "", (255, 255, 255)), width=2)
    return crop
