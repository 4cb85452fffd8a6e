"""How the face detector shrinks a photo for its models: one function, so that the passes, the grown
inputs and the second looks all see the same pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_pixels(pixels: np.ndarray, width: int, height: int, area: bool = True) -> np.ndarray:
    """An RGB array resized as the detector's inputs are: PIL's antialiased bilinear, or with `area`
    OpenCV's area average to shrink (within a grey level or two of PIL's, at about half its cost on
    a 640 x 480 frame; the `fast` configuration's) and bilinear to enlarge.

    >>> resize_pixels(np.full((480, 640, 3), 7, np.uint8), 128, 96)[0, 0].tolist()
    [7, 7, 7]
    """
    h, w = pixels.shape[:2]
    if (w, h) == (width, height):
        return pixels
    if not area:
        image = Image.fromarray(np.ascontiguousarray(pixels))
        return np.asarray(image.resize((width, height), Image.BILINEAR))
    import cv2  # an import already made once anything has run the Haar detector or read a video

    shrink = width <= w and height <= h
    return cv2.resize(np.ascontiguousarray(pixels), (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
