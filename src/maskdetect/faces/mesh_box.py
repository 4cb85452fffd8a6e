"""Face boxes half from BlazeFace, half from the 468-point face mesh run inside them.

BlazeFace boxes are square; people draw boxes that follow the face, which the mesh's points outline.
The mean of the two boxes takes some of that shape while bounding the damage where the mesh is far
off (small or masked faces). The measurements: docs/detector.md, "Why each refinement works".
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image


class MeshBoxer:
    """Turns detector boxes into detector-and-mesh boxes. One mesh interpreter per thread.

    >>> boxer = MeshBoxer()
    >>> boxer(Image.new("RGB", (200, 200)), np.array([[50.0, 50.0, 150.0, 150.0]])).shape
    (1, 4)
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def _mesh(self):
        mesh = getattr(self._local, "mesh", None)
        if mesh is None:
            from maskdetect.faces.landmarks import FaceMesh  # loads a model: only when first used

            mesh = self._local.mesh = FaceMesh()
        return mesh

    def __call__(self, image: Image.Image, boxes: np.ndarray) -> np.ndarray:
        """The mean of each box and the box around the mesh's 468 points found inside it."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = boxes.copy()
        for i, box in enumerate(boxes):
            points = self._mesh().landmarks_in_box(image, tuple(box), upright=False).points[:, :2]
            out[i] = (box + np.concatenate([points.min(axis=0), points.max(axis=0)])) / 2
        return out
