"""The face detector interface and a factory that builds one by name."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image

# Names accepted by `create_detector` (and the CLI's --detector choices).
# "retinaface" runs one pass at its default long side; "retinaface-<long side>" names the other measured
# ones: a name fixes the candidates a detector gives, which is what a face verifier is fitted on.
DETECTORS: tuple[str, ...] = (
    "blazeface", "blazeface-fast", "haar",
    "retinaface", "retinaface-480", "retinaface-640", "retinaface-960", "retinaface-1280",
)


class FaceDetector(Protocol):
    """Anything that finds faces: boxes in VOC-like framing, scores in [0, 1], best first."""

    name: str

    def detect(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """(boxes N x 4 as x0, y0, x1, y1 pixels of `image`; scores N)."""
        ...


def create_detector(
    name: str = "blazeface", threshold: float | None = None, candidate_threshold: float | None = None
) -> FaceDetector:
    """Build a face detector.

    Args:
        name: "blazeface" (tiles and scales, for photos), "blazeface-fast" (three whole-frame passes,
            for video and camera), "haar" (OpenCV's fallback), "retinaface" (one RetinaFace pass at its
            default long side) or "retinaface-<long side>" (480, 640, 960, 1280).
        threshold: the score a face needs (the face decision when no verifier decides); None keeps
            the detector's tuned default.
        candidate_threshold: the score from which a box is a candidate (what a face verifier weighs,
            or what steadies the merged boxes); None keeps the detector's default. Only detectors
            with candidates (BlazeFace) take it.

    Raises:
        ValueError: unknown name (the message lists the choices) or a threshold outside (0, 1).

    >>> create_detector("haar").name
    'haar'
    """
    if name == "blazeface":
        from maskdetect.faces.blazeface import BlazeFaceDetector

        return BlazeFaceDetector("accurate", threshold=threshold, candidate_threshold=candidate_threshold)
    if name == "blazeface-fast":
        from maskdetect.faces.blazeface import BlazeFaceDetector

        detector = BlazeFaceDetector("fast", threshold=threshold, candidate_threshold=candidate_threshold)
        detector.name = "blazeface-fast"
        return detector
    if name == "haar":
        from maskdetect.faces.haar import HaarDetector

        if candidate_threshold is not None:
            raise ValueError("the haar detector has no candidate threshold (it scores faces once)")
        return HaarDetector(threshold=threshold)
    if name in DETECTORS and name.startswith("retinaface"):
        from maskdetect.faces.retinaface import DEFAULT_LONG_SIDE, RetinaFaceDetector

        long_side = DEFAULT_LONG_SIDE if name == "retinaface" else int(name.removeprefix("retinaface-"))
        detector = RetinaFaceDetector(long_side, threshold=threshold, candidate_threshold=candidate_threshold)
        detector.name = name
        return detector
    raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
