"""The face verifier: its file is checked, it is used only for the checkpoint it was fitted for, and
with it the Predictor keeps faces and drops look-alikes."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from maskdetect import Predictor
from maskdetect.runtime import DEFAULT_MODEL
from maskdetect.verify import (
    FaceVerifier,
    VerifierError,
    load_verifier,
    suppress_second_boxes,
    verifier_for,
)


def _verifier(features: int = 2, sha: str = "abc") -> FaceVerifier:
    n = 5 + features
    return FaceVerifier(sha, np.zeros(n), np.ones(n), np.r_[1.0, np.zeros(n - 1)], 0.0, 0.5)


def test_a_saved_verifier_loads_back(tmp_path) -> None:
    _verifier().save(tmp_path / "v.json", data="test")
    loaded = load_verifier(tmp_path / "v.json")
    assert loaded.feature_count == 2 and loaded.threshold == 0.5 and loaded.checkpoint_sha256 == "abc"


@pytest.mark.parametrize("change, message", [
    (lambda d: "not json{", "not a readable face verifier"),
    (lambda d: {**d, "format": "other"}, "not a face verifier"),
    (lambda d: {**d, "coef": d["coef"][:-1]}, "must each be 7 finite numbers"),
    (lambda d: {**d, "mean": [float("nan")] * 7}, "must each be 7 finite numbers"),
    (lambda d: {**d, "scale": [0.0] * 7}, "every scale must be positive"),
    (lambda d: {**d, "threshold": 1.5}, "must lie in"),
    (lambda d: {k: v for k, v in d.items() if k != "intercept"}, "missing or bad field"),
])
def test_a_bad_verifier_file_is_one_clear_error(tmp_path, change, message) -> None:
    good = _verifier().to_dict()
    changed = change(good)
    path = tmp_path / "bad.verifier.json"
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(VerifierError, match=message) as err:
        load_verifier(path)
    assert str(path) in str(err.value)


def test_a_verifier_fitted_for_another_checkpoint_is_not_used(tmp_path, caplog) -> None:
    checkpoint = tmp_path / "model.pt"
    shutil.copy(DEFAULT_MODEL, checkpoint)
    assert verifier_for(checkpoint) is None  # none beside it
    _verifier(sha="0" * 64).save(tmp_path / "model.verifier.json")
    with caplog.at_level(logging.WARNING):
        assert verifier_for(checkpoint) is None
    assert "fitted for another checkpoint" in caplog.text


def test_the_bundled_verifier_belongs_to_the_bundled_model() -> None:
    verifier = verifier_for(DEFAULT_MODEL)
    assert verifier is not None and verifier.feature_count == 1280 and 0 < verifier.threshold < 1


def test_second_boxes_on_one_face_are_dropped() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 7, 7], [20, 0, 30, 10], [0, 0, 20, 20]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    # the second overlaps the first (IoU 0.68), the third lies inside it, the last holds it: only a
    # box that is most of another's area inside counts, so the big one stays
    assert suppress_second_boxes(boxes, scores, 0.3, 0.7).tolist() == [0, 3, 4]


def test_features_of_another_size_are_refused() -> None:
    with pytest.raises(ValueError, match="weighs 7 inputs, got 8"):
        _verifier().face_probability(np.array([[0, 0, 5, 5]]), [0.5], np.zeros((1, 2)), np.zeros((1, 3)),
                                     (10, 10))


def test_the_verifier_keeps_the_face_and_drops_the_look_alikes() -> None:
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    plain = Predictor(verify=False).predict(astronaut)
    verified = Predictor().predict(astronaut)
    assert len(plain) == 3  # the face, and two weak look-alikes on a sleeve and a helmet
    assert len(verified) == 1
    face = verified.faces[0]
    x0, y0, x1, y1 = face.box
    assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 200  # her face
    assert face.detection_score > 0.9


def test_a_threshold_given_by_the_user_applies_to_the_face_probability() -> None:
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    assert Predictor(detection_threshold=0.999999).predict(astronaut).faces == []


def test_detect_turns_the_verifier_off_on_request(tmp_path) -> None:
    from skimage import data

    from maskdetect.cli import main

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    counts = {}
    for flags in ([], ["--no-verifier"]):
        out = tmp_path / ("plain" if flags else "verified")
        argv = ["detect", str(tmp_path / "astronaut.png"), "--out", str(out), "--no-images", *flags]
        assert main(argv) == 0
        record = json.loads((out / "detections.jsonl").read_text().splitlines()[0])
        counts[bool(flags)] = len(record["faces"])
    assert counts == {False: 1, True: 3}
