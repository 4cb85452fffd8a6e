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
        results: `FaceResult`s (anything with box, label and score).

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
    for face in results:
        colour = CLASS_COLOURS.get(face.label, (255, 255, 255))
        x0, y0, x1, y1 = (round(v) for v in face.box)
        # Sized by the photo, but never far past the face: in a large crowd photo a label as big as
        # the photo asks would bury the small faces around it.
        height = max(1, y1 - y0)
        line = max(1, min(max(2, round(longer / 400)), round(height / 12)))
        font = _font(max(11, min(round(longer / 60), round(height * 0.6))))
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        text = f"{face.label} {face.score:.0%}"
        tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), text, font=font)
        tw, th = tx1 - tx0, ty1 - ty0
        # The label sits above the box, or inside its top when the box touches the top edge.
        ty = y0 - th - 2 * line if y0 - th - 2 * line >= 0 else y0
        draw.rectangle((x0, ty, x0 + tw + 2 * line, ty + th + 2 * line), fill=colour)
        draw.text((x0 + line - tx0, ty + line - ty0), text, fill=(255, 255, 255), font=font)
    return canvas
