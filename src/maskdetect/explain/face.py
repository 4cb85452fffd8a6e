"""One face of a photo explained for a person: the occlusion map blended on the face, and the share of
its heat on the nose and mouth. What the web page shows when a face is clicked (`serve/explain_route.py`).

The map comes from the library's `Explainer` (coarse-to-fine occlusion, `quick_settings`), the region
from the face mesh around the face's box (`FaceMesh.landmarks_in_box`, which straightens a tilted
head; it found 22 of 50 faces of andrewmvd photos where the mesh on the model's crop found 17), moved
into the crop's grid (`region.nose_mouth_heat`), the picture from `overlay.overlay_png`: nothing here
measures or draws on its own.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from maskdetect.explain.folder import COLOUR_LABELS
from maskdetect.explain.overlay import overlay_png
from maskdetect.explain.region import RegionHeat, nose_mouth_heat
from maskdetect.explain.runner import Explainer, ExplainSettings, FaceExplanation
from maskdetect.faces.crop import Box, square_box

if TYPE_CHECKING:
    from maskdetect.faces.landmarks import MeshResult

# landmarks(photo, box) -> the face mesh in the photo's pixels: FaceMesh().landmarks_in_box
MeshFn = Callable[[Image.Image, Box], "MeshResult"]
MIN_MESH_SCORE = 0.5  # MediaPipe's own: below it the mesh has found no face
PATCH_FRACTION = 7  # the window's side is a seventh of the crop's: 32 px at 224


def quick_settings(input_size: int) -> ExplainSettings:
    """Coarse-to-fine occlusion sized to answer within about 2 s a face on 2 CPUs.

    The window is a seventh of the crop's side and steps by half of it: at 224 px, patch 32 and
    stride 16, about 110 windows evaluated, against the 729 of `maskdetect explain`'s exact 16/8 map
    (4-6 s a face on 2 CPUs even coarse-to-fine). The map is coarser; its nose-and-mouth share is
    what a person reads from it.

    >>> s = quick_settings(224)
    >>> s.mode, s.patch, s.stride
    ('coarse', 32, 16)
    """
    patch = max(2, round(input_size / PATCH_FRACTION))
    return ExplainSettings(method="occlusion", mode="coarse", patch=patch, stride=max(1, patch // 2))


@dataclass
class FaceWhy:
    """One face's explanation as a person sees it.

    Attributes:
        explanation: the explainer's answer (map, crop, probabilities).
        region: the heat on the nose and mouth; None when it could not be measured (`note` says why).
        mesh_score: the face mesh's face-presence score on the crop (NaN without a mesh).
        note: why there is no region share ("" when there is one).
        overlay: PNG bytes of the map blended on the crop, the nose-and-mouth region outlined.
    """

    explanation: FaceExplanation
    region: RegionHeat | None
    mesh_score: float
    note: str
    overlay: bytes

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description, the overlay as a data URL.

        >>> from maskdetect.explain.runner import FaceExplanation
        >>> face = FaceExplanation(Image.new("RGB", (4, 4)), np.zeros((4, 4)), {"covered": 1.0},
        ...                        "covered", "covered", "occlusion")
        >>> FaceWhy(face, None, float("nan"), "no mesh", b"png").summary()["nose_mouth"]
        {'heat_share': None, 'area_share': None, 'mesh_score': None, 'note': 'no mesh'}
        """
        region = self.region
        mesh = None if math.isnan(self.mesh_score) else round(self.mesh_score, 4)
        return {
            **self.explanation.summary(),
            "nose_mouth": {
                "heat_share": None if region is None else round(region.heat_share, 4),
                "area_share": None if region is None else round(region.area_share, 4),
                "mesh_score": mesh,
                "note": self.note,
            },
            "overlay": "data:image/png;base64," + base64.b64encode(self.overlay).decode("ascii"),
        }


def explain_face(
    explainer: Explainer, photo: Image.Image, box: Box, landmarks: MeshFn | None = None,
    *, min_mesh_score: float = MIN_MESH_SCORE,
) -> FaceWhy:
    """Explain the face at `box` of `photo`: its map, the heat on its nose and mouth, the picture.

    Args:
        explainer: an occlusion `Explainer` (e.g. with `quick_settings`).
        photo: the whole RGB photo.
        box: the face box (x0, y0, x1, y1) in the photo's pixels.
        landmarks: the face mesh (`FaceMesh().landmarks_in_box`); None: no nose-and-mouth share.
        min_mesh_score: below this mesh score the region is not measured.

    >>> from maskdetect.checkpoint import make_checkpoint
    >>> from maskdetect.models import create_model
    >>> from maskdetect.preprocess import Preprocessing
    >>> ckpt = make_checkpoint(create_model("small_cnn"), "small_cnn", Preprocessing(input_size=32))
    >>> explainer = Explainer(ckpt, ExplainSettings(patch=8, stride=4, backend="torch", mode="coarse"))
    >>> why = explain_face(explainer, Image.new("RGB", (60, 40)), (10, 5, 40, 35))
    >>> why.explanation.heatmap.shape, why.note
    ((32, 32), 'no face mesh on this server')
    """
    explanation = explainer.explain_box(photo, box)
    region, score, note = None, float("nan"), "no face mesh on this server"
    if landmarks is not None:
        mesh = landmarks(photo, box)
        score = mesh.score
        if score < min_mesh_score:
            note = (f"the face mesh found no face here (score {score:.2f} < {min_mesh_score}); masks and "
                    "small faces often hide it")
        else:
            # The crop's square as crop_face cuts it: its corner and side in the photo's pixels.
            x0, y0, x1, _ = (round(v) for v in square_box(box, explainer.preprocessing.crop_policy))
            side = max(1, x1 - x0)
            region = nose_mouth_heat(explanation.heatmap, np.asarray(mesh.points)[:, :2] - [x0, y0],
                                     (side, side))
            note = ""
            if math.isnan(region.heat_share):
                region, note = None, "occluding any part of the face did not lower the probability"
    target = explanation.target
    title = f"{explanation.predicted} {explanation.probabilities[explanation.predicted]:.2f}"
    png = overlay_png(explanation.crop, explanation.heatmap, title=title, symmetric=True,
                      colour_label=COLOUR_LABELS["occlusion"].format(target=target),
                      polygon=None if region is None else region.polygon)
    return FaceWhy(explanation, region, float(score), note, png)
