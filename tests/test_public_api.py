"""The package's public API: every name in `maskdetect.__all__` resolves, lazily, and ImageResult works."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

import maskdetect
from maskdetect.results import FaceResult, ImageResult


def test_every_public_name_resolves() -> None:
    for name in maskdetect.__all__:
        assert getattr(maskdetect, name) is not None, name
    assert set(dir(maskdetect)) == set(maskdetect.__all__)


def test_an_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        maskdetect.no_such_thing  # noqa: B018


def test_importing_the_package_loads_no_heavy_library() -> None:
    code = (
        "import sys, maskdetect; "
        "print([m for m in ('torch', 'onnxruntime', 'cv2', 'ai_edge_litert') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _probs(*values: float) -> dict[str, float]:
    return dict(zip(maskdetect.CLASSES, values, strict=True))


def _result(tmp_image: Image.Image | None = None) -> ImageResult:
    faces = [
        FaceResult((10, 10, 40, 50), "covered", 0.9, _probs(0.9, 0.05, 0.05), 0.8),
        FaceResult((50, 10, 90, 50), "uncovered", 0.7, _probs(0.1, 0.2, 0.7), 0.6),
    ]
    return ImageResult(faces, 100, 60, path="x.jpg", image=tmp_image)


def test_image_result_record_and_counts() -> None:
    result = _result()
    record = result.to_dict()
    assert record["path"] == "x.jpg" and (record["width"], record["height"]) == (100, 60)
    assert [f["label"] for f in record["faces"]] == ["covered", "uncovered"]
    assert json.loads(json.dumps(record)) == record
    assert result.counts() == {"covered": 1, "incorrect": 0, "uncovered": 1}
    assert len(result) == 2 and [f.label for f in result] == ["covered", "uncovered"]
    assert "path" not in ImageResult([], 5, 5).to_dict()


def test_image_result_draws_and_saves(tmp_path) -> None:
    result = _result(Image.new("RGB", (100, 60), "black"))
    saved = result.save(tmp_path / "boxed.png")
    drawn = Image.open(saved)
    assert drawn.size == (100, 60)
    assert drawn.getpixel((10, 30)) != (0, 0, 0)  # the covered face's box edge
    with pytest.raises(ValueError, match="no image"):
        _result().draw()


def test_predictor_predict_gives_an_image_result(untrained_checkpoint, tmp_path) -> None:
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    photo.save(tmp_path / "astronaut.png")
    predictor = maskdetect.Predictor(untrained_checkpoint, backend="torch")
    result = predictor.predict(tmp_path / "astronaut.png")
    assert result.path == str(tmp_path / "astronaut.png")
    assert (result.width, result.height) == photo.size
    assert len(result) >= 1
    assert [f.box for f in result] == [f.box for f in predictor(photo)]
