"""OpenCV's Haar cascade: the fallback face detector (`--detector haar`).

Weaker than BlazeFace on crowds and turned heads, but it needs nothing beyond opencv-python-headless.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from PIL import Image

from maskdetect.faces.nms import clip_boxes, reframe_boxes

log = logging.getLogger(__name__)

CASCADE = "haarcascade_frontalface_default.xml"

# Haar boxes are square, larger than the tight VOC face boxes and sit high (forehead in, chin out).
# Like BlazeFace's constants these map a Haar box onto a VOC-like box: centre moved down by DY * h,
# size scaled by SX, SY. Measured on the first 300 andrewmvd-face-mask photos (medians over the 174
# Haar boxes matched at IoU >= 0.3, with these constants at 0, 1, 1): `maskdetect evaluate-detect
# ../shared/data/andrewmvd-face-mask --detection-only --detector haar --match-iou 0.3 --limit 300`.
VOC_BOX_DY = 0.12
VOC_BOX_SX = 0.81
VOC_BOX_SY = 0.86


class HaarDetector:
    """Frontal faces by OpenCV's Haar cascade; score is a squashed cascade confidence.

    >>> boxes, scores = HaarDetector().detect(Image.new("RGB", (200, 100)))
    >>> boxes.shape
    (0, 4)
    """

    name = "haar"

    def __init__(self, threshold: float | None = None, min_size: int = 16):
        import cv2  # heavy import, only when this detector is chosen

        path = cv2.data.haarcascades + CASCADE
        self._cv2 = cv2
        self._path = path
        self.threshold = 0.5 if threshold is None else float(threshold)
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"detection threshold must be between 0 and 1, got {threshold}")
        self.min_size = min_size
        self._local = threading.local()
        if self._cascade().empty():
            raise FileNotFoundError(f"Haar cascade not found or unreadable: {path} (needs opencv 4.x)")

    def _cascade(self):
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = self._cv2.CascadeClassifier(self._path)
        return cascade

    def detect(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """Face boxes (N x 4, x0 y0 x1 y1 pixels) and scores, best first."""
        gray = np.asarray(image.convert("L"))
        found, _levels, weights = self._cascade().detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        if len(found) == 0:
            return np.zeros((0, 4)), np.zeros(0)
        found = np.asarray(found, dtype=np.float64)
        # Cascade weights are unbounded margins (around 0-10): squash them into (0, 1).
        scores = 1.0 / (1.0 + np.exp(-(np.asarray(weights, dtype=np.float64).reshape(-1) - 2.0)))
        found[:, 2:] += found[:, :2]  # (x, y, w, h) -> (x0, y0, x1, y1)
        boxes = reframe_boxes(found, 0.0, VOC_BOX_DY, VOC_BOX_SX, VOC_BOX_SY)
        boxes = clip_boxes(boxes, image.width, image.height)
        keep = scores >= self.threshold
        order = np.argsort(-scores[keep], kind="stable")
        return boxes[keep][order], scores[keep][order]
