"""The masks themselves: kinds, colours, patterns, and the shaded fabric painted over the fields.

All drawn by this code (no images of unclear licence): a surgical mask (pleats, a nose wire, bound
edges), a cloth mask (plain, stripes, dots or gingham, with a fabric grain) and an N95-like
respirator (a centre seam, stronger curvature, sometimes a valve). The colour of each pixel is a
function of the placement's per-pixel fields, so pleats and stripes bend with the face.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from maskdetect.synth.placement import MaskFields

KINDS: tuple[str, ...] = ("surgical", "cloth", "n95")
PATTERNS: tuple[str, ...] = ("plain", "stripes", "dots", "gingham")

_PALETTES: dict[str, list[tuple[int, int, int]]] = {
    "surgical": [(150, 195, 225), (120, 175, 215), (236, 236, 234), (165, 215, 195), (235, 185, 200),
                 (45, 45, 50), (190, 185, 225)],
    "cloth": [(30, 40, 70), (25, 25, 28), (120, 120, 125), (170, 40, 45), (215, 200, 170), (70, 100, 150),
              (60, 110, 80), (230, 230, 225), (200, 120, 150), (235, 190, 60)],
    "n95": [(238, 238, 232), (225, 225, 215), (200, 200, 195), (240, 230, 200), (60, 60, 65)],
}


@dataclass(frozen=True)
class MaskStyle:
    """How one mask looks.

    Attributes:
        kind: one of KINDS.
        colour: the fabric's RGB colour.
        pattern: one of PATTERNS (cloth masks; the others are plain).
        pattern_colour: RGB of the stripes, dots or checks.
        pattern_scale: spacing of the pattern in face units (bridge-to-chin distance).
        valve: an N95 exhalation valve.
    """

    kind: str
    colour: tuple[int, int, int]
    pattern: str = "plain"
    pattern_colour: tuple[int, int, int] = (255, 255, 255)
    pattern_scale: float = 0.08
    valve: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown mask kind {self.kind!r}; known: {', '.join(KINDS)}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown mask pattern {self.pattern!r}; known: {', '.join(PATTERNS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def random_style(rng: np.random.Generator, kinds: tuple[str, ...] = KINDS) -> MaskStyle:
    """A random mask style (surgical masks are the most common, as in the photos).

    >>> random_style(np.random.default_rng(0)).kind in KINDS
    True
    """
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown mask kind {kind!r}; known: {', '.join(KINDS)}")
    weights = np.array([{"surgical": 0.5, "cloth": 0.35, "n95": 0.15}[k] for k in kinds])
    kind = str(rng.choice(list(kinds), p=weights / weights.sum()))
    palette = _PALETTES[kind]
    colour = palette[int(rng.integers(len(palette)))]
    colour = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in colour)
    if kind != "cloth":
        return MaskStyle(kind, colour, valve=kind == "n95" and bool(rng.random() < 0.3))
    pattern = str(rng.choice(PATTERNS, p=[0.55, 0.2, 0.15, 0.1]))
    light = sum(colour) / 3 > 140
    base = (30, 30, 35) if light else (235, 235, 230)
    pattern_colour = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in base)
    return MaskStyle(kind, colour, pattern, pattern_colour, float(rng.uniform(0.05, 0.11)))


def _band(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-(((x - centre) / width) ** 2))


def _pattern_weight(style: MaskStyle, f: MaskFields) -> np.ndarray:
    """Where the pattern colour shows, 0..1, smoothed over about a pixel."""
    s = style.pattern_scale
    soft = 1.0 / max(f.unit * s, 1.0)  # one pixel in pattern periods: keeps small faces free of aliasing
    if style.pattern == "stripes":
        phase = f.down * (0.7 / s)  # stripes run along the mask, bending with it
        return np.clip((np.abs((phase % 1.0) - 0.5) - 0.25) / soft + 0.5, 0, 1)
    if style.pattern == "dots":
        du = (f.u / s) % 1.0 - 0.5
        dv = (f.v / s + 0.5 * (np.floor(f.u / s) % 2)) % 1.0 - 0.5
        return np.clip((0.22 - np.hypot(du, dv)) / soft + 0.5, 0, 1)
    if style.pattern == "gingham":
        a = np.clip((np.abs((f.u / s) % 1.0 - 0.5) - 0.25) / soft + 0.5, 0, 1)
        b = np.clip((np.abs((f.v / s) % 1.0 - 0.5) - 0.25) / soft + 0.5, 0, 1)
        return 0.5 * (a + b)
    return np.zeros_like(f.u)


def _kind_shading(style: MaskStyle, f: MaskFields) -> np.ndarray:
    """Light and shadow that the mask's own make brings: pleats, seams, edge bindings."""
    t, r = f.across, f.down
    shade = 1.0 - 0.28 * t**2  # curves away from the light towards the cheeks
    shade -= 0.12 * np.clip(r - 0.8, 0, 1) / 0.2  # turns under the chin
    if style.kind == "surgical":
        for centre in (0.3, 0.52, 0.74):
            shade -= 0.16 * _band(r, centre, 0.025)  # the fold's shadow
            shade += 0.07 * _band(r, centre - 0.04, 0.03)  # its lit upper lip
        shade -= 0.08 * ((r < 0.06) | (r > 0.95) | (np.abs(t) > 0.94))  # bound edges
        shade -= 0.06 * _band(r, 0.03, 0.02) * (np.abs(t) < 0.35)  # the nose wire
    elif style.kind == "n95":
        shade = 1.0 - 0.38 * t**2
        shade -= 0.15 * _band(t, 0.0, 0.03)  # the centre seam
        shade += 0.08 * _band(r, 0.45, 0.3) * (1 - np.abs(t))  # the cup's bulge catches the light
        shade -= 0.05 * (r < 0.04)
    else:
        shade -= 0.06 * _band(t, 0.0, 0.025)  # the centre seam of a shaped cloth mask
    return shade


def paint_mask(
    face: np.ndarray, style: MaskStyle, fields: MaskFields, rng: np.random.Generator
) -> np.ndarray:
    """The mask's colour over the fields' window, shaded and lit like the photo.

    Args:
        face: the image's pixels in the fields' window, float RGB 0..1 (H, W, 3); its low-frequency
            brightness lights the mask, so a mask in shadow stays in shadow.
        style: the look.
        fields: from `placement.mask_fields`.
        rng: for the fabric grain.

    Returns:
        Float RGB 0..1 of the same shape as `face`.
    """
    colour = np.array(style.colour, dtype=np.float64) / 255.0
    rgb = np.broadcast_to(colour, face.shape).copy()
    if style.kind == "cloth" and style.pattern != "plain":
        w = _pattern_weight(style, fields)[..., None]
        rgb = rgb * (1 - w) + w * (np.array(style.pattern_colour) / 255.0)
    if style.valve:
        dist = np.hypot((fields.across - 0.42) * 2.2, (fields.down - 0.55) * 1.5)
        w = np.clip((0.15 - dist) * fields.unit * 0.5 + 0.5, 0, 1)[..., None]
        rgb = rgb * (1 - w) + w * (colour * 0.85)
    shade = _kind_shading(style, fields)
    rgb = rgb * shade[..., None]
    # Light the mask like the skin under it: the photo's brightness over the mask, smoothed, relative
    # to its mean, so the side in shadow stays darker and a dim photo gives a dim mask.
    lum = face.mean(axis=2)
    weight = fields.alpha
    mean = float((lum * weight).sum() / max(weight.sum(), 1e-6))
    light = _smooth(lum, max(2, int(fields.unit * 0.15)))
    rgb *= np.clip((light / max(mean, 0.05)) ** 0.5, 0.6, 1.25)[..., None]
    rgb *= 0.75 + 0.35 * min(mean / 0.45, 1.0)  # overall exposure of the photo
    grain = 0.035 if style.kind == "cloth" else 0.015
    rgb += rng.normal(0.0, grain, size=rgb.shape[:2])[..., None]
    return np.clip(rgb, 0.0, 1.0)


def _smooth(image: np.ndarray, radius: int) -> np.ndarray:
    """A box blur (two passes, so nearly Gaussian) of a 2-D array, same size."""
    import cv2

    k = 2 * radius + 1
    out = cv2.blur(image.astype(np.float32), (k, k), borderType=cv2.BORDER_REFLECT)
    return cv2.blur(out, (k, k), borderType=cv2.BORDER_REFLECT).astype(np.float64)
