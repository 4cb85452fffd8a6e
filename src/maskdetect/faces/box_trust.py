"""How far to trust a BlazeFace box's position, from how big the face was in the model's input.

BlazeFace places faces that are small in its input badly, so when one face's candidates are merged
each box is weighed by `score * trust` and the well-placed views decide where the face is (the merged
score is the best score either way). The measurements: docs/detector.md, "Why each refinement works".
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
