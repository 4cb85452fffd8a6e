"""A second look at each merged face: crop around it so it fills the model's input at the size
BlazeFace scores best, run both models again, and average their scores with the first one.

Seen again at 40-60 px (a crop 4x the box for the 192 px model, 3.5x for the 128 px one) a face
scores high and a false face low, so the mean of the three scores separates them better than the
first score; the second looks' boxes are not used (noisier than the merged box). The measurements:
docs/detector.md, "Why each refinement works".
"""

from __future__ import annotations

import numpy as np

from maskdetect.faces.nms import iou_matrix, weighted_nms
from maskdetect.faces.resize import resize_pixels

# (model, crop side as a multiple of the box's longer side): the face at about 48 px of 192 and
# 37 px of 128, inside the sizes both models place and score best.
SECOND_LOOKS: tuple[tuple[str, float], ...] = (("full", 4.0), ("short", 3.5))
MIN_OVERLAP = 0.3  # a second-look box must overlap the merged box this much to be the same face
MIN_SECOND_SCORE = 0.1  # weaker second-look boxes count as not found (score 0)


def face_patch(
    pixels: np.ndarray, box: np.ndarray, crop_scale: float, size: int, area: bool = False
) -> tuple[np.ndarray, int, int, int]:
    """A square crop centred on `box`, `crop_scale` times its longer side, resized to `size`
    (`area`: with `resize_pixels`'s area average, else PIL's bilinear).

    The part outside the photo is black, as BlazeFace's letterboxing pads.

    Returns:
        (patch size x size x 3 uint8, x0, y0, side): where the crop lies in the photo.

    >>> photo = np.zeros((100, 100, 3), np.uint8)
    >>> patch, x0, y0, side = face_patch(photo, np.array([40, 40, 60, 60]), 4, 128)
    >>> patch.shape, (x0, y0, side)
    ((128, 128, 3), (10, 10, 80))
    """
    height, width = pixels.shape[:2]
    side = max(4, round(crop_scale * max(box[2] - box[0], box[3] - box[1])))
    x0 = round((box[0] + box[2]) / 2 - side / 2)
    y0 = round((box[1] + box[3]) / 2 - side / 2)
    canvas = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = pixels[sy0:sy1, sx0:sx1]
    return resize_pixels(canvas, size, size, area), x0, y0, side


def second_look_scores(pixels: np.ndarray, boxes: np.ndarray, models: dict, area: bool = False) -> np.ndarray:
    """Each box's score in each of SECOND_LOOKS (N x len(SECOND_LOOKS); 0 where not found again).

    Args:
        pixels: the photo, H x W x 3 uint8 RGB.
        boxes: N x 4 merged face boxes (BlazeFace framing, photo pixels).
        models: BlazeFaceModel by name ("full", "short"), as the detector holds them.
        area: crops shrunk with `resize_pixels`'s area average (else PIL's bilinear).
    """
    scores = np.zeros((len(boxes), len(SECOND_LOOKS)))
    for i, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        for j, (kind, crop_scale) in enumerate(SECOND_LOOKS):
            model = models[kind]
            patch, x0, y0, side = face_patch(pixels, box, crop_scale, model.spec.input_size, area)
            found, found_scores = model.run(patch, MIN_SECOND_SCORE)
            if not len(found):
                continue
            found, found_scores = weighted_nms(found * side + np.array([x0, y0, x0, y0]), found_scores)
            overlap = iou_matrix(box, found)[0]
            best = int(np.argmax(overlap))
            if overlap[best] >= MIN_OVERLAP:
                scores[i, j] = found_scores[best]
    return scores


def verified_scores(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The mean of the first-pass score and the second-look scores of each face.

    >>> verified_scores(np.array([0.45, 0.9]), np.array([[0.9, 0.75], [0.0, 0.0]])).round(2).tolist()
    [0.7, 0.3]
    """
    first = np.asarray(first, dtype=np.float64).reshape(-1, 1)
    second = np.asarray(second, dtype=np.float64).reshape(len(first), -1)
    return np.concatenate([first, second], axis=1).mean(axis=1)
