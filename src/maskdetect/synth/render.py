"""Draw one mask on one face: placement fields, painted fabric, ear straps, composited.

Small faces are drawn on an enlarged copy and shrunk back, so edges and pleats are smooth at any size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from maskdetect.synth.masks import MaskStyle, paint_mask
from maskdetect.synth.placement import FaceFrame, mask_fields, placement_edges

# Faces narrower than this (eye corner to eye corner, in pixels) are drawn enlarged.
_MIN_DRAW_EYE_SPAN = 120.0


@dataclass
class DrawnMask:
    """A face with a mask drawn on it.

    Attributes:
        image: the new RGB image, the same size as the input.
        coverage: float32 (H, W), how much of each pixel the mask covers (0..1).
        placement: MaskedFace-Net's suffix of the placement drawn.
        style: the mask's look.
    """

    image: Image.Image
    coverage: np.ndarray
    placement: str
    style: MaskStyle


def draw_mask(
    image: Image.Image, points: np.ndarray, placement: str, style: MaskStyle, rng: np.random.Generator
) -> DrawnMask:
    """Draw a mask on the face whose mesh is `points`.

    Args:
        image: an RGB image holding the face (a crop is best: the work is done over the face only).
        points: the face mesh (468, 2 or 3) in `image`'s pixels.
        placement: one of `placement.KNOWN_PLACEMENTS`.
        style: see `masks.random_style`.
        rng: the seeded generator (placement variety and fabric grain).

    Returns:
        A `DrawnMask`.

    >>> from maskdetect.synth.masks import MaskStyle
    >>> pts = np.zeros((468, 3))  # a degenerate mesh is refused
    >>> draw_mask(Image.new("RGB", (64, 64)), pts, "Mask", MaskStyle("surgical", (200, 200, 200)),
    ...           np.random.default_rng(0))
    Traceback (most recent call last):
    ...
    ValueError: face mesh is degenerate: the eye corners coincide
    """
    image = image.convert("RGB")
    points = np.asarray(points, dtype=np.float64)[:, :2]
    span = float(np.linalg.norm(points[33] - points[263]))
    zoom = max(1.0, _MIN_DRAW_EYE_SPAN / max(span, 1.0))
    work = image
    if zoom > 1.0:
        work = image.resize((round(image.width * zoom), round(image.height * zoom)), Image.BICUBIC)
        points = points * np.array([work.width / image.width, work.height / image.height])
    frame = FaceFrame(points)

    edges = placement_edges(frame, placement, rng, style.kind)
    fields = mask_fields(points, edges, work.size)
    x0, y0, x1, y1 = fields.window
    # The mask as a premultiplied colour layer over the (enlarged) image; the photo's own pixels are
    # only ever blended once, at their own size, so where the mask is not they stay exactly as they were.
    window = np.asarray(work, dtype=np.float64)[y0:y1, x0:x1] / 255.0
    fabric = paint_mask(window, style, fields, rng)
    alpha = np.zeros((work.height, work.width), dtype=np.float64)
    colour = np.zeros((work.height, work.width, 3), dtype=np.float64)
    alpha[y0:y1, x0:x1] = fields.alpha
    colour[y0:y1, x0:x1] = fabric * fields.alpha[..., None]
    import cv2

    if edges.drop:
        # Slide the drawn mask down the face (along its chin-ward axis); what leaves the image is cut.
        dx, dy = frame.v_axis * edges.drop * fields.unit
        move = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        colour = cv2.warpAffine(colour, move, (work.width, work.height), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(alpha, move, (work.width, work.height), flags=cv2.INTER_LINEAR)
        jaw = (float(frame.points[172, 1]), float(frame.points[397, 1]))
        edges = edges.dropped(jaw)
    _draw_straps(colour, alpha, frame, edges, style, fields.unit)
    if zoom > 1.0:
        colour = cv2.resize(colour, image.size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, image.size, interpolation=cv2.INTER_AREA)
    alpha = np.clip(alpha, 0.0, 1.0)
    pixels = np.asarray(image, dtype=np.float64) / 255.0
    pixels = pixels * (1 - alpha[..., None]) + colour
    out = Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    return DrawnMask(out, alpha.astype(np.float32), placement, style)


def _draw_straps(
    colour: np.ndarray, alpha: np.ndarray, frame: FaceFrame, edges, style: MaskStyle, unit: float
) -> None:
    """Ear loops: from the mask's side corners back towards the ears, just past the face outline."""
    strap = Image.new("L", (alpha.shape[1], alpha.shape[0]), 0)
    draw = ImageDraw.Draw(strap)
    width = max(1, round(unit * 0.014))
    pts = frame.points
    for side, (ear_idx, jaw_idx) in enumerate(((234, 172), (454, 397))):
        sign = -1.0 if side == 0 else 1.0
        top_v = edges.top_sides[side]
        bottom_v = edges.bottom_sides[side] if edges.bottom_sides else pts[jaw_idx, 1]
        ear_v = pts[ear_idx, 1]
        # Upper loop from the top corner, lower loop from the bottom corner, both to the ear.
        loops = ((top_v + 0.03, ear_v - 0.04), (max(top_v + 0.06, bottom_v - 0.06), ear_v + 0.12))
        for v_level, to_v in loops:
            u_edge = float(np.interp(v_level, *_side_chain(pts, side)))
            a, b = frame.to_pixels(np.array([(u_edge, v_level), (u_edge + sign * 0.09, to_v)]))
            draw.line([tuple(a), tuple(b)], fill=255, width=width)
    s = np.asarray(strap, dtype=np.float64) / 255.0
    base = np.array(style.colour, dtype=np.float64) / 255.0
    tint = np.clip(base + (0.1 if style.kind == "surgical" else 0.0), 0, 1) * 0.85
    colour *= (1 - s)[..., None]
    colour += s[..., None] * tint
    alpha *= 1 - s
    alpha += s


def _side_chain(pts: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(v, u) of the face outline's side from the cheekbone to the jaw angle, sorted by v."""
    chain = (234, 93, 132, 58, 172) if side == 0 else (454, 323, 361, 288, 397)
    vu = pts[list(chain)]
    order = np.argsort(vu[:, 1])
    return vu[order, 1], vu[order, 0] * 1.05
