"""Annotated pictures: a box per face in its class colour, with the label and confidence."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from maskdetect.labels import CLASS_COLOURS


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without scalable default font
        return ImageFont.load_default()


def draw_results(image: Image.Image, results: Sequence) -> Image.Image:
    """Draw each face's box, label and confidence on a copy of `image`.

    Args:
        image: the photo the results were computed on (EXIF-rotated, as `open_image` returns it).
        results: `FaceResult`s (anything with box, label and score; one with a `caption` shows
            that instead of its label and score, as a tracked face shows its track id and label).

    Returns:
        A new RGB image; the input is left untouched.

    >>> from maskdetect.predict import FaceResult
    >>> face = FaceResult((10, 10, 50, 60), "covered", 0.93, {"covered": 0.93}, 0.9)
    >>> draw_results(Image.new("RGB", (100, 100)), [face]).getpixel((10, 30))
    (46, 160, 67)
    """
    canvas = image.convert("RGB")  # always a new image (a copy when already RGB)
    draw = ImageDraw.Draw(canvas)
    longer = max(canvas.size)
    labels = []
    for face in results:
        colour = CLASS_COLOURS.get(face.label, (255, 255, 255))
        x0, y0, x1, y1 = (round(v) for v in face.box)
        # Sized by the photo, but never far past the face: in a large crowd photo a label as big as
        # the photo asks would bury the small faces around it.
        height = max(1, y1 - y0)
        line = max(1, min(max(2, round(longer / 400)), round(height / 12)))
        font = _font(max(11, min(round(longer / 60), round(height * 0.6))))
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        labels.append((face, colour, x0, y0, y1, line, font))
    # Labels after every box, so that no box crosses a label; each goes above its box, else inside
    # its top, else below it: wherever it covers no label already placed (as the web page does).
    placed: list[tuple[int, int, int, int]] = []
    for face, colour, x0, y0, y1, line, font in labels:
        text = getattr(face, "caption", None) or f"{face.label} {face.score:.0%}"
        tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), text, font=font)
        w, h = tx1 - tx0 + 2 * line, ty1 - ty0 + 2 * line
        x = max(0, min(x0, canvas.width - w))
        spots = [(x, y, x + w, y + h) for y in (y0 - h, y0, y1) if y >= 0 and y + h <= canvas.height]
        spot = next((c for c in spots if not any(_overlap(c, p) for p in placed)), None)
        spot = spot or (spots[0] if spots else (x, max(0, y0), x + w, max(0, y0) + h))
        placed.append(spot)
        draw.rectangle(spot, fill=colour)
        draw.text((spot[0] + line - tx0, spot[1] + line - ty0), text, fill=(255, 255, 255), font=font)
    return canvas


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
