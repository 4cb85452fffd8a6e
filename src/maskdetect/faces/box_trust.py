"""How far to trust a BlazeFace box's position, from how big the face was in the model's input.

Both BlazeFace models place small faces badly: a face a dozen pixels wide in the 192 px full-range
input, or under about 32 px in the 128 px short-range input, comes back with a box that is too big
or off centre (the short-range model's smallest anchors are 16 px cells, so it reports a 10 px face
as a 20-25 px one). Measured on andrewmvd-face-mask, candidates that overlap an annotated face by
IoU >= 0.3 reach IoU >= 0.5 in this share of cases (VOC-like framing):

    input px      0-12  12-16  16-20  20-24  24-32  32-48  48-64  64-96
    full, whole   0.58   0.76   0.86   0.90   0.93   0.98   0.98   1.00
    short, whole     -   0.75   0.66   0.65   0.82   0.97   0.97   1.00
    full, halves  0.64   0.76   0.84   0.92   0.94   0.95   0.92   0.96

The same face is usually found by several passes, at several sizes. Weighing each candidate's box
by `score * trust` when the candidates of one face are merged lets the well-placed views decide
where the face is while the others still count for whether it is a face (the merged score is the
best score either way). On andrewmvd-face-mask this took recall at IoU 0.5 from 0.587 to 0.598
(faces 16-32 px 0.605 -> 0.624), precision 0.731 -> 0.734. The ramps were chosen there.
"""

from __future__ import annotations

import numpy as np

# (input px where trust starts to rise, input px of full trust), per model.
# The back-camera model shares the short-range model's anchor layout; its ramp is the short one's
# (on andrewmvd-face-mask (12, 32) and (40, 80) did no better).
TRUST_RAMPS: dict[str, tuple[float, float]] = {
    "full": (12.0, 32.0),
    "short": (20.0, 40.0),
    "back": (20.0, 40.0),
}
MIN_TRUST = 0.05  # never zero: a face seen only small still needs a box


def box_trust(model: str, input_px: np.ndarray) -> np.ndarray:
    """Trust (MIN_TRUST..1) in boxes whose width was `input_px` pixels in `model`'s input.

    Args:
        model: "full", "short" or "back".
        input_px: box widths in the model's input pixels.

    Raises:
        ValueError: an unknown model name.

    >>> box_trust("short", np.array([10.0, 30.0, 64.0])).round(2).tolist()
    [0.05, 0.5, 1.0]
    """
    if model not in TRUST_RAMPS:
        raise ValueError(f"unknown BlazeFace model {model!r}; choose one of {', '.join(TRUST_RAMPS)}")
    low, high = TRUST_RAMPS[model]
    return np.clip((np.asarray(input_px, dtype=np.float64) - low) / (high - low), MIN_TRUST, 1.0)
