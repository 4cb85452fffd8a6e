"""Nose-and-mouth heat share: geometry, the face mesh on a real face, and the per-class summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from explain_fixtures import RectangleModel
from PIL import Image

from maskdetect.checkpoint import make_checkpoint, save_checkpoint
from maskdetect.cli import main
from maskdetect.explain.region import (
    NOSE_MOUTH_POINTS,
    convex_hull,
    heat_share,
    nose_mouth_polygon,
    polygon_mask,
)
from maskdetect.explain.runner import Explainer, ExplainSettings
from maskdetect.explain.summary import labelled_images, measure_regions, summarise
from maskdetect.faces.crop import crop_face
from maskdetect.models import create_model
from maskdetect.preprocess import Preprocessing
from maskdetect.runtime import Classifier

SIZE = 32


def test_hull_mask_and_share() -> None:
    hull = convex_hull(np.array([[2, 2], [10, 2], [6, 4], [10, 8], [2, 8]]))
    assert len(hull) == 4
    mask = polygon_mask(hull, 12, 14)
    assert mask[5, 6] and not mask[0, 0] and not mask[5, 12]
    assert mask.sum() == 9 * 7  # x 2..10, y 2..8 inclusive
    heat = np.zeros((12, 14))
    heat[5, 6], heat[0, 0], heat[1, 1] = 3.0, 1.0, -10.0
    assert heat_share(heat, mask) == 0.75
    assert np.isnan(heat_share(np.zeros((12, 14)), mask))
    with pytest.raises(ValueError, match="468-point face mesh"):
        nose_mouth_polygon(np.zeros((10, 3)))


@pytest.fixture(scope="module")
def face_crop() -> Image.Image:
    from skimage.data import astronaut

    return crop_face(Image.fromarray(astronaut()), (165, 40, 265, 160), size=192)


def test_mesh_region_sits_on_the_nose_and_mouth_of_a_real_face(face_crop: Image.Image) -> None:
    from maskdetect.faces.landmarks import FaceMesh

    points, score = FaceMesh().landmarks(face_crop)
    assert score > 0.5
    polygon = nose_mouth_polygon(points)
    mask = polygon_mask(polygon, 192, 192)
    ys, xs = np.nonzero(mask)
    assert 0.04 < mask.mean() < 0.3
    assert 70 < xs.mean() < 125  # the middle of the face, not a cheek
    assert ys.max() > 110 and ys.min() > 40  # from below the eyes down to the mouth


def _tree(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, label in (("train", "covered"), ("train", "uncovered"), ("holdout", "with_mask")):
        folder = root / split / label
        folder.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(100, 256, (48, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (root / "train" / "notes").mkdir()
    Image.new("RGB", (8, 8)).save(root / "train" / "notes" / "x.png")  # not a class folder: ignored
    return root


def _mesh_on(x0: float, y0: float, x1: float, y1: float):
    """A fake face mesh whose nose and mouth points span a rectangle (in a 48 px image)."""
    points = np.full((468, 3), 24.0)
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    for n, index in enumerate(NOSE_MOUTH_POINTS):
        points[index, :2] = corners[n % 4]
    return lambda image: (points, 0.9)


def test_summary_finds_heat_on_the_region_and_a_shortcut_off_it(tmp_path: Path) -> None:
    ckpt = make_checkpoint(create_model("small_cnn"), "small_cnn", Preprocessing(input_size=SIZE))
    explainer = Explainer(ckpt, ExplainSettings(patch=2, stride=1, backend="torch"))
    rows, cols = slice(20, 28), slice(8, 16)  # the model reads only this block of the 32 px crop
    explainer._forward = Classifier.from_module(RectangleModel(rows, cols)).probabilities
    items = labelled_images(_tree(tmp_path))
    assert len(items) == 6 and {label for _, label in items} == {"covered", "uncovered"}
    # Mesh points in the 48 px image that land on the block after scaling to 32 px.
    on, _ = measure_regions(explainer, items, _mesh_on(12, 30, 22.5, 40.5))
    table = summarise(on)
    assert table["all"]["faces"] == 6 and table["covered"]["faces"] == 4
    assert table["all"]["heat_share"] > 0.8 and table["all"]["lift"] > 5
    assert 0.05 < table["all"]["area_share"] < 0.1
    off, _ = measure_regions(explainer, items, _mesh_on(30, 2, 45, 14))
    assert summarise(off)["all"]["heat_share"] < 0.05  # heat elsewhere: a shortcut, measured
    limited, skipped = measure_regions(explainer, items, _mesh_on(0, 0, 40, 40), limit_per_class=1)
    assert len(limited) == 2 and not skipped


def test_summary_command_writes_json_and_markdown(tmp_path: Path, face_crop: Image.Image, capsys) -> None:
    tree = tmp_path / "tree"
    for label in ("covered", "uncovered"):
        (tree / label).mkdir(parents=True)
        face_crop.save(tree / label / "astronaut.png")
    (tree / "covered" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    ckpt_path = tmp_path / "m.pt"
    save_checkpoint(make_checkpoint(create_model("small_cnn"), "small_cnn", Preprocessing(input_size=SIZE)),
                    ckpt_path)
    out = tmp_path / "report"
    rc = main(["explain", "--summary", str(tree), "--checkpoint", str(ckpt_path), "--patch", "8",
               "--stride", "4", "--backend", "torch", "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "summary.json").read_text())
    assert report["summary"]["all"]["faces"] == 2
    assert len(report["skipped"]) == 1 and "broken.jpg" in report["skipped"][0]
    assert "| covered | 1 |" in (out / "summary.md").read_text()
    assert "lift" in capsys.readouterr().out
    assert Image.open(out / "regions.png").format == "PNG"


def test_a_photos_face_gets_the_mesh_region_moved_into_the_crops_grid() -> None:
    # explain_face runs the mesh around the box in the photo's pixels; the region must land where
    # the model's crop has those pixels (the crop's corner subtracted, its side scaled to the grid).
    from maskdetect.explain.face import explain_face
    from maskdetect.faces.crop import square_box
    from maskdetect.faces.landmarks import MeshResult

    ckpt = make_checkpoint(create_model("small_cnn"), "small_cnn", Preprocessing(input_size=SIZE))
    explainer = Explainer(ckpt, ExplainSettings(patch=2, stride=1, backend="torch", mode="coarse"))
    explainer._forward = Classifier.from_module(RectangleModel(slice(20, 28), slice(8, 16))).probabilities
    bright = np.random.default_rng(0).integers(180, 256, (200, 200, 3), dtype=np.uint8)  # not the fill
    photo, box = Image.fromarray(bright), (50.0, 60.0, 130.0, 140.0)
    x0, y0, x1, _ = (round(v) for v in square_box(box, explainer.preprocessing.crop_policy))
    pixel = (x1 - x0) / SIZE  # photo pixels per grid cell

    def mesh_on(gx0: float, gy0: float, gx1: float, gy1: float):
        points = np.zeros((468, 3), np.float32)
        corners = [(x0 + gx0 * pixel, y0 + gy0 * pixel), (x0 + gx1 * pixel, y0 + gy0 * pixel),
                   (x0 + gx1 * pixel, y0 + gy1 * pixel), (x0 + gx0 * pixel, y0 + gy1 * pixel)]
        for n, index in enumerate(NOSE_MOUTH_POINTS):
            points[index, :2] = corners[n % 4]
        return lambda image, face_box: MeshResult(points, 0.9)

    on = explain_face(explainer, photo, box, mesh_on(8, 20, 15.5, 27.5))  # the block the model reads
    assert on.region.heat_share > 0.8 and 0.05 < on.region.area_share < 0.1 and on.note == ""
    off = explain_face(explainer, photo, box, mesh_on(20, 2, 30, 12))
    assert off.region.heat_share < 0.05
    unsure = explain_face(explainer, photo, box, lambda image, face_box: MeshResult(np.zeros((468, 3)), 0.2))
    assert unsure.region is None and "no face" in unsure.note
    assert unsure.summary()["nose_mouth"]["heat_share"] is None
