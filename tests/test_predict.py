"""The one core call: Predictor on paths, bytes, PIL images and arrays, on both backends."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from maskdetect.images import ImageError
from maskdetect.labels import CLASSES
from maskdetect.predict import FaceResult, Predictor
from maskdetect.runtime import DEFAULT_MODEL


@pytest.fixture(scope="module")
def predictor(untrained_checkpoint):
    # Face threshold 0.6 (a bare checkpoint has no verifier: the detector's score): only the astronaut's
    # face (0.94); the accurate detector's default (0.35) also reports two weak look-alikes on her suit
    # (test_faces.test_every_detector_finds_the_astronaut).
    return Predictor(untrained_checkpoint, detector="blazeface", face_threshold=0.6)


def _check_astronaut(results):
    assert len(results) == 1
    face = results[0]
    assert isinstance(face, FaceResult)
    x0, y0, x1, y1 = face.box
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 220  # her face, in pixels of the 512 x 512 image
    assert face.label in CLASSES and set(face.probabilities) == set(CLASSES)
    assert face.score == max(face.probabilities.values())
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert 0.5 < face.detection_score <= 1.0


def test_every_kind_of_input_gives_the_same_faces(predictor, tmp_path):
    array = astronaut()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    (tmp_path / "a.png").write_bytes(buffer.getvalue())
    sources = (array, Image.fromarray(array), buffer.getvalue(), tmp_path / "a.png")
    outputs = [predictor(src) for src in sources]
    for results in outputs:
        _check_astronaut(results)
        assert results[0].to_dict() == outputs[0][0].to_dict()


def test_torch_and_onnx_backends_agree(untrained_checkpoint, predictor):
    onnx_face = predictor(astronaut())[0]
    torch_face = Predictor(untrained_checkpoint, backend="torch")(astronaut())[0]
    assert torch_face.label == onnx_face.label
    for name in CLASSES:
        assert torch_face.probabilities[name] == pytest.approx(onnx_face.probabilities[name], abs=1e-4)


def test_exif_rotation_is_applied_before_detection(predictor):
    # Stored sideways with an EXIF "rotate 90" tag: the box must be in the upright picture's pixels.
    upright = Image.fromarray(astronaut())
    exif = Image.Exif()
    exif[0x0112] = 6  # the viewer rotates 90 degrees clockwise
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", exif=exif.tobytes())
    _check_astronaut(predictor(buffer.getvalue()))


def test_classify_faces_uses_the_given_boxes(predictor):
    results = predictor.classify_faces(astronaut(), [(180, 80, 270, 190), (0, 0, 40, 40)])
    assert [r.box for r in results] == [(180.0, 80.0, 270.0, 190.0), (0.0, 0.0, 40.0, 40.0)]
    assert all(r.detection_score == 1.0 and r.label in CLASSES for r in results)
    with pytest.raises(ValueError, match="x1 > x0"):
        predictor.classify_faces(astronaut(), [(50, 50, 40, 60)])


def test_no_faces_gives_an_empty_list(predictor):
    assert predictor(np.full((240, 320, 3), 128, np.uint8)) == []


def test_bad_images_are_clear_errors(predictor, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not a picture")
    for bad, reason in [(tmp_path / "empty.jpg", "empty"), (tmp_path / "text.jpg", "not an image")]:
        with pytest.raises(ImageError, match=reason):
            predictor(bad)


def test_missing_default_model_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr("maskdetect.bundle.DEFAULT_BUNDLE", tmp_path / "default")
    with pytest.raises(FileNotFoundError, match="no such model") as err:
        Predictor()
    assert str(tmp_path / "default") in str(err.value)
    assert DEFAULT_MODEL.name == "default" and (DEFAULT_MODEL / "bundle.json").is_file()


def test_unknown_backend_and_detector_list_the_choices(untrained_checkpoint):
    with pytest.raises(ValueError, match="onnx, torch"):
        Predictor(untrained_checkpoint, backend="tensorrt")
    with pytest.raises(ValueError, match="haar"):
        Predictor(untrained_checkpoint, detector="mtcnn")
    with pytest.raises(TypeError, match="detection_threshold"):  # split into candidate and face thresholds
        Predictor(untrained_checkpoint, detection_threshold=0.6)


def test_haar_detector_runs_through_the_predictor(untrained_checkpoint):
    _check_astronaut(Predictor(untrained_checkpoint, detector="haar", backend="torch")(astronaut()))


def test_with_detector_shares_the_classifier(predictor):
    fast = predictor.with_detector("blazeface-fast", face_threshold=0.6)
    assert fast.detector.name == "blazeface-fast" and predictor.detector.name == "blazeface"
    assert fast.classifier is predictor.classifier
    _check_astronaut(fast(astronaut()))
    same_face = predictor(astronaut())[0].probabilities
    assert fast(astronaut())[0].probabilities == pytest.approx(same_face, abs=0.02)
