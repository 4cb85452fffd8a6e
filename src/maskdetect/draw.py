"""Annotated pictures: a box per face in its class colour, with its number, label and confidence.

Labels never hide one another: `layout_labels` places each one (above its box if free, else below,
else inside its top, else at the nearest free spot, with a thin line back to its face), and a photo
too crowded for whole labels gets just the face numbers (the numbers of the JSON record's faces).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from maskdetect.labels import CLASS_COLOURS

Rect = tuple[int, int, int, int]

# A photo is too crowded for whole labels ("3 covered 93%"), and gets the face numbers alone, when a
# whole label finds no free spot within NEAR label heights of its face, or when the whole labels
# together would cover more than CROWDED of the picture (they would hide the faces around them).
NEAR = 2.0
CROWDED = 0.15
SMALLEST_FONT = 9


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without scalable default font
        return ImageFont.load_default()


@dataclass(frozen=True)
class PlacedLabel:
    """Where one face's label is drawn.

    Attributes:
        text: what it says: "3 covered 93%" (face number, label, confidence), or "3" alone in a
            photo too crowded for whole labels (a tracked face: its caption, or its track id).
        rect: (x0, y0, x1, y1) of the label's filled background, in image pixels (x1, y1 excluded).
        font_size: the text's size in pixels.
        leader: (x0, y0, x1, y1) of a thin line from the label to its box when it had to move away
            from the box, else None.
    """

    text: str
    rect: Rect
    font_size: int
    leader: Rect | None = None


def face_texts(faces: Sequence) -> list[tuple[str, str]]:
    """Each face's label, whole and short: ("3 covered 93%", "3"), numbered from 1 in the given order.

    A face with a `caption` (a tracked face in a video: "#4 covered") shows that instead, and its
    `tag` ("#4") as the short form.

    >>> from maskdetect.predict import FaceResult
    >>> face_texts([FaceResult((0, 0, 9, 9), "covered", 0.934, {"covered": 0.934}, 1.0)])
    [('1 covered 93%', '1')]
    """
    texts = []
    for number, face in enumerate(faces, 1):
        caption = getattr(face, "caption", None)
        if caption:
            texts.append((caption, getattr(face, "tag", None) or caption))
        else:
            texts.append((f"{number} {face.label} {face.score:.0%}", str(number)))
    return texts


def place_labels(boxes: Sequence[Sequence[float]], sizes: Sequence[tuple[int, int]],
                 canvas: tuple[int, int], *, near: float | None = None) -> list[Rect | None]:
    """Where each label goes so that no label covers another: a greedy placement, largest face first.

    Each label goes above its box if that spot is free, else below it, else inside its top edge, else
    at the free spot nearest the box (touching it where possible); labels stay inside the canvas.

    Args:
        boxes: each face's (x0, y0, x1, y1).
        sizes: each label's (width, height), in the same order.
        canvas: (width, height) of the picture.
        near: the farthest a label may move from its box, in label heights; None: anywhere.

    Returns:
        Each label's (x0, y0, x1, y1), in the order given; None where no free spot was near enough
        (or, with `near=None`, where the picture has no room left at all).

    >>> place_labels([(10, 40, 50, 90), (14, 44, 54, 94)], [(60, 12), (60, 12)], (200, 120))
    [(10, 28, 70, 40), (14, 94, 74, 106)]
    """
    order = sorted(range(len(boxes)), key=lambda i: (-_area(boxes[i]), boxes[i][1], boxes[i][0]))
    placed: list[Rect] = []
    spots: list[Rect | None] = [None] * len(boxes)
    no_room = (math.inf, math.inf)  # the smallest label that found no free spot anywhere
    for i in order:
        x0, y0, x1, y1 = (round(v) for v in boxes[i])
        w, h = sizes[i]
        x = _clamp(x0, canvas[0] - w)
        preferred = [(x, y, x + w, y + h) for y in (y0 - h, y1, y0) if 0 <= y <= canvas[1] - h]
        spot = next((c for c in preferred if not any(_overlap(c, p) for p in placed)), None)
        if spot is None and (near is not None or w < no_room[0] or h < no_room[1]):
            limit = math.inf if near is None else near * h
            spot = _nearest_free((x0, y0, x1, y1), w, h, placed, canvas, limit)
            if spot is None and near is None:
                no_room = (w, h) if w * h < no_room[0] * no_room[1] else no_room
        if spot is not None:
            placed.append(spot)
            spots[i] = spot
    return spots


def layout_labels(canvas: tuple[int, int], faces: Sequence) -> list[PlacedLabel]:
    """Every face's label as `draw_results` draws it: its text, size and place, none covering another.

    Whole labels when each finds a free spot near its face and together they cover little of the
    picture; else, in a crowd, every face's number alone, wherever there is room (smaller, down to
    `SMALLEST_FONT` px, if need be). Only a picture with no room left even for those gets a label
    drawn over another (at the spot above its face).

    Args:
        canvas: (width, height) of the picture.
        faces: anything with box, label and score (a `caption`, and `tag`, replace the text).

    Returns:
        One `PlacedLabel` per face, in the order given.

    >>> from maskdetect.predict import FaceResult
    >>> [label.text for label in layout_labels((100, 100), [FaceResult((10, 30, 50, 80), "covered", 0.93,
    ...                                                                 {"covered": 0.93}, 1.0)])]
    ['1 covered 93%']
    """
    texts = face_texts(faces)
    base = [_font_size(canvas, face.box) for face in faces]
    area = canvas[0] * canvas[1]
    # (whole or short text, font sizes, how near, the most of the picture the labels may cover)
    attempts = [(0, base, NEAR, CROWDED * area), (1, base, None, area / 2),
                (1, [min(size, SMALLEST_FONT) for size in base], None, area / 2)]
    for which, fonts, near, most in attempts:
        chosen = [text[which] for text in texts]
        sizes = [_label_size(text, size) for text, size in zip(chosen, fonts, strict=True)]
        if sum(w * h for w, h in sizes) > most:
            if which == 0 or fonts is not attempts[-1][1]:
                continue
            near = 0.0  # no hope of room for all: only the spots against each face
        spots = place_labels([face.box for face in faces], sizes, canvas, near=near)
        if all(spot is not None for spot in spots):
            break
    labels = []
    for face, text, size, (w, h), spot in zip(faces, chosen, fonts, sizes, spots, strict=True):
        if spot is None:  # no room left anywhere: above the face, over whatever is there
            x0, y0 = round(face.box[0]), round(face.box[1])
            spot = (_clamp(x0, canvas[0] - w), _clamp(y0 - h, canvas[1] - h))
            spot = (*spot, spot[0] + w, spot[1] + h)
        labels.append(PlacedLabel(text, spot, size, _leader(spot, face.box)))
    return labels


def draw_results(image: Image.Image, results: Sequence) -> Image.Image:
    """Draw each face's box, number, label and confidence on a copy of `image` (`layout_labels`).

    Args:
        image: the photo the results were computed on (EXIF-rotated, as `open_image` returns it).
        results: `FaceResult`s (anything with box, label and score; one with a `caption` shows
            that instead of its number, label and score, as a tracked face shows its track id and label).

    Returns:
        A new RGB image; the input is left untouched.

    >>> from maskdetect.predict import FaceResult
    >>> face = FaceResult((10, 10, 50, 60), "covered", 0.93, {"covered": 0.93}, 0.9)
    >>> draw_results(Image.new("RGB", (100, 100)), [face]).getpixel((10, 30))
    (46, 160, 67)
    """
    canvas = image.convert("RGB")  # always a new image (a copy when already RGB)
    draw = ImageDraw.Draw(canvas)
    colours = [CLASS_COLOURS.get(face.label, (255, 255, 255)) for face in results]
    for face, colour in zip(results, colours, strict=True):
        box = tuple(round(v) for v in face.box)
        draw.rectangle(box, outline=colour, width=_line_width(canvas.size, face.box))
    # Labels after every box, so that no box crosses a label; a label moved away from its face is
    # tied to it by a thin line, drawn before the labels so that it never crosses one either.
    labels = layout_labels(canvas.size, results)
    for label, colour in zip(labels, colours, strict=True):
        if label.leader is not None:
            draw.line(label.leader, fill=colour, width=max(1, label.font_size // 10))
    for label, colour in zip(labels, colours, strict=True):
        if not label.text:
            continue
        font = _font(label.font_size)
        left, top = font.getbbox(label.text)[:2]
        pad = _pad(label.font_size)
        x0, y0, x1, y1 = label.rect
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=colour)
        draw.text((x0 + pad - left, y0 + pad - top), label.text, fill=(255, 255, 255), font=font)
    return canvas


def _font_size(canvas: tuple[int, int], box: Sequence[float]) -> int:
    # Sized by the photo, but never far past the face: in a large crowd photo a label as big as
    # the photo asks would bury the small faces around it.
    height = max(1, round(box[3]) - round(box[1]))
    return max(11, min(round(max(canvas) / 60), round(height * 0.6)))


def _line_width(canvas: tuple[int, int], box: Sequence[float]) -> int:
    height = max(1, round(box[3]) - round(box[1]))
    return max(1, min(max(2, round(max(canvas) / 400)), round(height / 12)))


def _pad(font_size: int) -> int:
    return max(1, round(font_size / 8))


def _label_size(text: str, font_size: int) -> tuple[int, int]:
    if not text:
        return 0, 0
    x0, y0, x1, y1 = _font(font_size).getbbox(text)
    pad = _pad(font_size)
    return x1 - x0 + 2 * pad, y1 - y0 + 2 * pad


def _nearest_free(box: Rect, w: int, h: int, placed: list[Rect], canvas: tuple[int, int],
                  limit: float) -> Rect | None:
    # Look near the box first, then twice as far, and so on: only the labels close by are compared.
    if w == 0 or h == 0:
        return None
    rects = np.array(placed, dtype=np.int64).reshape(-1, 4)
    radius, widest = 2.0 * h, math.hypot(*canvas)
    while True:
        reach = min(radius, limit)
        spot = _free_within(box, w, h, rects, canvas, reach)
        if spot is not None or reach >= limit or reach >= widest:
            return spot
        radius *= 2


def _free_within(box: Rect, w: int, h: int, rects: np.ndarray, canvas: tuple[int, int],
                 reach: float) -> Rect | None:
    # The free spot nearest the box lies against the box, a placed label or the canvas's edge in each
    # direction: try every such x with every such y within `reach` of the box, all at once.
    bx0, by0, bx1, by1 = box
    window = (bx0 - reach - w, by0 - reach - h, bx1 + reach + w, by1 + reach + h)
    rects = rects[(rects[:, 0] < window[2]) & (window[0] < rects[:, 2])
                  & (rects[:, 1] < window[3]) & (window[1] < rects[:, 3])]
    px0, py0, px1, py1 = rects.T
    xs = np.concatenate([[bx0, bx1 - w, bx1, bx0 - w, 0, canvas[0] - w], px1, px0 - w])
    ys = np.concatenate([[by0 - h, by1, by0, by1 - h, 0, canvas[1] - h], py1, py0 - h])
    xs = np.unique(np.clip(xs, 0, max(0, canvas[0] - w)))
    ys = np.unique(np.clip(ys, 0, max(0, canvas[1] - h)))
    x, y = (grid.ravel()[:, None] for grid in np.meshgrid(xs, ys))
    gap = np.hypot(np.maximum(0, np.maximum(bx0 - (x + w), x - bx1)),
                   np.maximum(0, np.maximum(by0 - (y + h), y - by1)))[:, 0]
    within = gap <= reach
    x, y, gap = x[within], y[within], gap[within]
    taken = ((x < px1) & (px0 < x + w) & (y < py1) & (py0 < y + h)).any(axis=1)
    # Among spots equally near, the one nearest the spot above the box.
    cost = gap + 1e-3 * np.hypot(x - bx0, y - (by0 - h))[:, 0]
    cost[taken] = np.inf
    if not cost.size or not np.isfinite(best := cost.min()):
        return None
    k = int(np.flatnonzero(cost == best)[0])
    return int(x[k, 0]), int(y[k, 0]), int(x[k, 0]) + w, int(y[k, 0]) + h


def _leader(label: Rect, box: Sequence[float]) -> Rect | None:
    # The shortest line between the label and its box, when they are apart by more than a few pixels.
    bx0, by0, bx1, by1 = (round(v) for v in box)
    xs = _closest(label[0], label[2], bx0, bx1)
    ys = _closest(label[1], label[3], by0, by1)
    if math.hypot(xs[1] - xs[0], ys[1] - ys[0]) <= max(3, (label[3] - label[1]) / 3):
        return None
    return xs[0], ys[0], xs[1], ys[1]


def _closest(a0: int, a1: int, b0: int, b1: int) -> tuple[int, int]:
    # The nearest points of two intervals [a0, a1) and [b0, b1]: one on each.
    if a1 <= b0:
        return a1 - 1, b0
    if b1 <= a0:
        return a0, b1
    middle = (max(a0, b0) + min(a1, b1)) // 2
    return middle, middle


def _clamp(value: int, top: int) -> int:
    return max(0, min(value, top))


def _area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
