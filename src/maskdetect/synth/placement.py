"""Where a mask sits on a face: MaskedFace-Net's four placements, built from the face mesh.

Everything is measured in a frame attached to the face, so the mask follows the head's pose:
origin on the nose bridge between the eyes (mesh point 168), u along the line between the outer eye
corners, v square to it pointing to the chin, both in units of the bridge-to-chin distance (the
chin is at v = 1). Each placement gives the mask's top edge and bottom edge as levels in that frame,
taken from mesh points (e.g. the correct mask's top edge lies on the nose bridge, the nose-exposed
mask's top edge between the nose and the upper lip); the sides follow the face's outline.

`mask_fields` turns a placement into per-pixel fields (how far across the mask, how far down it,
how much of the pixel the mask covers) that `render` paints a texture with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskdetect.faces import landmarks as lm

# MaskedFace-Net's file-name suffixes, in the order they are drawn.
PLACEMENTS: tuple[str, ...] = ("Mask", "Mask_Mouth_Chin", "Mask_Nose_Mouth", "Mask_Chin")
# Beyond MaskedFace-Net: the whole mask pulled down off the mouth onto the chin and neck, the way most
# wrongly worn masks look in street photos (MaskedFace-Net's Mask_Chin is a strip on the chin only).
EXTRA_PLACEMENTS: tuple[str, ...] = ("Mask_Neck",)
KNOWN_PLACEMENTS: tuple[str, ...] = PLACEMENTS + EXTRA_PLACEMENTS

# Oval points on each side (image left, image right), top to bottom: cheekbone, nose, mouth, below
# the mouth, jaw angle.
_SIDE = {
    "cheekbone": (234, 454),
    "nose": (93, 323),
    "mouth": (132, 361),
    "below_mouth": (58, 288),
    "jaw": (172, 397),
}
# How far the mask reaches past the face outline at the sides and below the chin (as a fraction
# of the face): masks stand off the cheeks and wrap under the chin.
_SIDE_FLARE = 1.05
_CHIN_WRAP = 0.06


@dataclass(frozen=True)
class Edges:
    """A mask's top and bottom edge in the face frame: level at the midline and at each side.

    Attributes:
        top_mid, top_sides: v of the top edge on the midline and at (image left, image right).
        bottom_mid, bottom_sides: v of the bottom edge, or None where the mask wraps under the chin.
        top_power: the top edge's curve (v rises from the side to the midline as |t| ** power);
            smaller is more pointed at the nose.
        drop: how far (in v) the whole mask, shaped as these edges say, is slid down the face after
            drawing: a mask pulled down keeps the shape it had on the face.
    """

    top_mid: float
    top_sides: tuple[float, float]
    bottom_mid: float | None = None
    bottom_sides: tuple[float, float] | None = None
    top_power: float = 1.6
    drop: float = 0.0

    def dropped(self, jaw_sides: tuple[float, float]) -> Edges:
        """These edges moved down by `drop` (bottom at the jaw when open), where the straps attach."""
        bottom_sides = self.bottom_sides or jaw_sides
        return Edges(
            self.top_mid + self.drop, (self.top_sides[0] + self.drop, self.top_sides[1] + self.drop),
            None if self.bottom_mid is None else self.bottom_mid + self.drop,
            (bottom_sides[0] + self.drop, bottom_sides[1] + self.drop), self.top_power,
        )


class FaceFrame:
    """The face frame of one mesh: converts between pixels and (u, v).

    >>> pts = np.zeros((468, 3), np.float32)
    >>> pts[33, :2], pts[263, :2], pts[168, :2], pts[152, :2] = (0, 0), (10, 0), (5, 0), (5, 20)
    >>> frame = FaceFrame(pts)
    >>> [round(float(x), 3) for x in frame.to_face(np.array([[5.0, 20.0]]))[0]]
    [0.0, 1.0]
    """

    def __init__(self, points: np.ndarray) -> None:
        xy = np.asarray(points, dtype=np.float64)[:, :2]
        across = xy[lm.EYE_OUTER_CORNERS[1]] - xy[lm.EYE_OUTER_CORNERS[0]]
        norm = np.linalg.norm(across)
        if norm < 1e-6:
            raise ValueError("face mesh is degenerate: the eye corners coincide")
        self.u_axis = across / norm
        self.v_axis = np.array([-self.u_axis[1], self.u_axis[0]])  # 90 degrees on, towards the chin
        self.origin = xy[168]
        self.unit = float(np.dot(xy[lm.CHIN_BOTTOM] - self.origin, self.v_axis))
        if self.unit < 1e-6:
            raise ValueError("face mesh is degenerate: the chin is not below the eyes")
        self.points = self.to_face(xy)

    def to_face(self, xy: np.ndarray) -> np.ndarray:
        """Pixels (n, 2) to face coordinates (n, 2)."""
        rel = np.asarray(xy, dtype=np.float64) - self.origin
        return np.stack([rel @ self.u_axis, rel @ self.v_axis], axis=-1) / self.unit

    def to_pixels(self, uv: np.ndarray) -> np.ndarray:
        """Face coordinates (n, 2) to pixels (n, 2)."""
        uv = np.asarray(uv, dtype=np.float64) * self.unit
        return self.origin + uv[..., :1] * self.u_axis + uv[..., 1:2] * self.v_axis

    def v(self, index: int) -> float:
        return float(self.points[index, 1])

    def side_v(self, name: str) -> tuple[float, float]:
        left, right = _SIDE[name]
        return self.v(left), self.v(right)


def _lerp(a: float, b: float, f: float) -> float:
    return a + (b - a) * f


def _lerp2(a: tuple[float, float], b: tuple[float, float], f: float) -> tuple[float, float]:
    return _lerp(a[0], b[0], f), _lerp(a[1], b[1], f)


def placement_edges(
    frame: FaceFrame, placement: str, rng: np.random.Generator, kind: str = "surgical"
) -> Edges:
    """The mask's edges for one of MaskedFace-Net's placements, with a little seeded variety.

    Args:
        frame: the face frame of the mesh.
        placement: "Mask" (nose, mouth and chin covered), "Mask_Mouth_Chin" (nose exposed),
            "Mask_Nose_Mouth" (chin exposed), "Mask_Chin" (only the chin covered) or "Mask_Neck"
            (a whole mask slid down so that its top edge lies between the lower lip and the chin's
            bottom; nose and mouth show, the rest hangs over the jaw and neck).
        rng: the random generator for the variety.
        kind: the mask's kind; an N95 has a more pointed top.

    Raises:
        ValueError: an unknown placement; the message lists the known ones.
    """
    if placement not in KNOWN_PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; known: {', '.join(KNOWN_PLACEMENTS)}")
    v = frame.v
    power = float(rng.uniform(1.1, 1.4) if kind == "n95" else rng.uniform(1.4, 2.0))
    on_bridge = _lerp(v(168), v(lm.NOSE_TIP), float(rng.uniform(0.25, 0.45)))
    bridge_sides = _lerp2(frame.side_v("cheekbone"), frame.side_v("nose"), float(rng.uniform(0.0, 0.35)))
    under_lip = _lerp(v(lm.LOWER_LIP_BOTTOM), v(lm.CHIN_TOP), float(rng.uniform(0.3, 0.8)))
    if placement == "Mask":
        return Edges(on_bridge, bridge_sides, top_power=power)
    if placement == "Mask_Neck":
        top = _lerp(v(lm.LOWER_LIP_BOTTOM), v(lm.CHIN_BOTTOM), float(rng.uniform(0.2, 0.8)))
        return Edges(on_bridge, bridge_sides, top_power=power, drop=top - on_bridge)
    if placement == "Mask_Mouth_Chin":
        # Below the nose: the nostrils show, the upper lip is covered.
        top = _lerp(v(lm.NOSE_BOTTOM), v(lm.UPPER_LIP_TOP), float(rng.uniform(0.1, 0.5)))
        sides = _lerp2(frame.side_v("nose"), frame.side_v("mouth"), float(rng.uniform(0.3, 0.7)))
        return Edges(top, sides, top_power=power)
    if placement == "Mask_Nose_Mouth":
        # Up on the nose but pulled above the chin: the bottom edge runs just under the lower lip,
        # fairly level, and the whole chin shows (as in MaskedFace-Net's chin-exposed images).
        bottom = _lerp(v(lm.LOWER_LIP_BOTTOM), v(lm.CHIN_TOP), float(rng.uniform(0.0, 0.45)))
        bottom_sides = _lerp2(
            frame.side_v("mouth"), frame.side_v("below_mouth"), float(rng.uniform(0.2, 0.8))
        )
        return Edges(on_bridge, bridge_sides, bottom, bottom_sides, top_power=power)
    # Mask_Chin: pulled down under the lower lip; nose and mouth show.
    sides = _lerp2(frame.side_v("mouth"), frame.side_v("below_mouth"), float(rng.uniform(0.3, 0.8)))
    return Edges(under_lip, sides, top_power=power)


@dataclass
class MaskFields:
    """Per-pixel fields of a mask over a window of the image.

    Attributes:
        window: (x0, y0, x1, y1) pixels of the image these arrays cover.
        alpha: how much of each pixel the mask covers, 0..1 (anti-aliased edges).
        across: t, -1 at the mask's image-left edge, 0 on the midline, 1 at its right edge.
        down: r, 0 at the top edge, 1 at the bottom edge.
        u, v: face-frame coordinates of each pixel (for patterns that stay put on the fabric).
        unit: the face frame's unit in pixels (the bridge-to-chin distance).
    """

    window: tuple[int, int, int, int]
    alpha: np.ndarray
    across: np.ndarray
    down: np.ndarray
    u: np.ndarray
    v: np.ndarray
    unit: float


def _outline(frame: FaceFrame) -> np.ndarray:
    """The face oval in the face frame, pushed out at the sides and under the chin."""
    oval = frame.points[list(lm.FACE_OVAL)].copy()
    mid_u = float(np.interp(0.5, frame.points[list(lm.MIDLINE), 1], frame.points[list(lm.MIDLINE), 0]))
    oval[:, 0] = mid_u + (oval[:, 0] - mid_u) * _SIDE_FLARE
    below = oval[:, 1] > 0.5
    oval[below, 1] += _CHIN_WRAP * (oval[below, 1] - 0.5) / 0.5
    return oval


def _chain_interp(query: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    order = np.argsort(keys)
    return np.interp(query, keys[order], values[order])


def mask_fields(points: np.ndarray, edges: Edges, image_size: tuple[int, int]) -> MaskFields:
    """Per-pixel fields of the mask that `edges` describe on the face of `points`.

    Args:
        points: the face mesh (468, 2 or 3) in the image's pixels.
        edges: from `placement_edges`.
        image_size: (width, height) of the image the fields are for.
    """
    frame = FaceFrame(points)
    outline = _outline(frame)
    n = len(lm.FACE_OVAL)
    right_chain, left_chain = outline[: n // 2 + 1], np.vstack([outline[n // 2 :], outline[:1]])
    # The jaw line from one jaw angle under the chin to the other (oval entries 397 .. 172).
    jaw = outline[lm.FACE_OVAL.index(_SIDE["jaw"][1]) : lm.FACE_OVAL.index(_SIDE["jaw"][0]) + 1]

    # The window: the mask's reach in pixels, clipped to the image.
    px = frame.to_pixels(outline[outline[:, 1] >= edges.top_mid - 0.2])
    width, height = image_size
    x0, y0 = (int(max(0, np.floor(px[:, i].min()) - 2)) for i in (0, 1))
    x1 = int(min(width, np.ceil(px[:, 0].max()) + 3))
    y1 = int(min(height, np.ceil(px[:, 1].max()) + 3))
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the mask falls outside the image")
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
    uv = frame.to_face(np.stack([xs.ravel(), ys.ravel()], axis=-1))
    u, v = uv[:, 0].reshape(xs.shape), uv[:, 1].reshape(xs.shape)

    mid = frame.points[list(lm.MIDLINE)]
    u_mid = _chain_interp(v, mid[:, 1], mid[:, 0])
    u_left = _chain_interp(v, left_chain[:, 1], left_chain[:, 0])
    u_right = _chain_interp(v, right_chain[:, 1], right_chain[:, 0])
    on_left = u < u_mid
    half = np.where(on_left, u_mid - u_left, u_right - u_mid)
    across = (u - u_mid) / np.maximum(half, 1e-3)
    side_top = np.where(on_left, edges.top_sides[0], edges.top_sides[1])
    reach = np.clip(np.abs(across), 0.0, 1.0)
    top = edges.top_mid + (side_top - edges.top_mid) * reach**edges.top_power
    bottom = _chain_interp(u, jaw[:, 0], jaw[:, 1])  # the (pushed-out) jaw line below each pixel
    if edges.bottom_mid is not None and edges.bottom_sides is not None:
        side_bottom = np.where(on_left, edges.bottom_sides[0], edges.bottom_sides[1])
        bottom = np.minimum(bottom, edges.bottom_mid + (side_bottom - edges.bottom_mid) * reach**2.0)

    unit = frame.unit
    # Anti-aliased edges: coverage ramps over one pixel across each edge.
    a_top = np.clip((v - top) * unit + 0.5, 0.0, 1.0)
    a_bottom = np.clip((bottom - v) * unit + 0.5, 0.0, 1.0)
    a_side = np.clip((1.0 - np.abs(across)) * half * unit + 0.5, 0.0, 1.0)
    alpha = a_top * a_bottom * a_side
    down = np.clip((v - top) / np.maximum(bottom - top, 1e-3), 0.0, 1.0)
    return MaskFields((x0, y0, x1, y1), alpha, np.clip(across, -1, 1), down, u, v, unit)
