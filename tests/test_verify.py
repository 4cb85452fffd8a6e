"""The face verifier: its file is checked, a bundle's verifier fitted for another classifier is refused
when the Predictor loads, and with it the Predictor keeps faces and drops look-alikes."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from maskdetect import Predictor
from maskdetect.bundle import open_bundle, write_manifest
from maskdetect.fileio import file_digest
from maskdetect.runtime import DEFAULT_MODEL
from maskdetect.verify import (
    FaceVerifier,
    FirstStage,
    VerifierError,
    load_verifier,
    suppress_second_boxes,
)


def _verifier(features: int = 2, sha: str = "abc") -> FaceVerifier:
    n = 5 + features
    return FaceVerifier(sha, np.zeros(n), np.ones(n), np.r_[1.0, np.zeros(n - 1)], 0.0, 0.5)


def _bundle(root, classifier, verifiers: dict[tuple[str, str], object]):
    """A bundle folder at `root`: a copy of `classifier`, and a verifier file per (detector, precision),
    each a FaceVerifier to save or the path of one to copy."""
    root.mkdir()
    shutil.copy(classifier, root / "classifier.pt")
    (root / "verifiers").mkdir()
    entries = []
    for (detector, precision), verifier in verifiers.items():
        name = f"verifiers/{detector}.{precision}.json"
        if isinstance(verifier, FaceVerifier):
            verifier.save(root / name)
        else:
            shutil.copy(verifier, root / name)
        entries.append({"detector": detector, "precision": precision, "file": name})
    write_manifest(root, {"classifier": {"file": "classifier.pt"}, "detectors": {"photo": "blazeface"},
                          "verifiers": entries})
    return open_bundle(root)


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
    # issue 31.8: a plain ValueError naming no file; values of the wrong kind taken as numbers
    (lambda d: json.dumps(d).replace('"features": 2', '"features": ' + "9" * 5000), "not a readable"),
    (lambda d: {**d, "intercept": 10**400}, "missing or bad field"),
    (lambda d: {**d, "threshold": "0.5"}, "'threshold' must be a number"),
    (lambda d: {**d, "suppress_iou": True}, "'suppress_iou' must be a number"),
    (lambda d: {**d, "mean": [str(v) for v in d["mean"]]}, "'mean' must be a list of numbers"),
    (lambda d: {**d, "coef": [[v] for v in d["coef"]]}, "'coef' must be a list of numbers"),
    (lambda d: {**d, "features": 2.5}, "'features' must be a whole number"),
    (lambda d: {**d, "features": "2"}, "'features' must be a whole number"),
    (lambda d: {**d, "checkpoint_sha256": ["abc"]}, "'checkpoint_sha256' must be"),
    (lambda d: {**d, "columns": d["columns"][::-1]}, "'columns' must be"),
    (lambda d: {**d, "intercept": float("nan")}, "intercept must be a finite number"),
    (lambda d: {**d, "first_stage": [1, 2]}, "first_stage must be an object"),
    (lambda d: " " * (17 << 20), "more than a face verifier can be"),
])
def test_a_bad_verifier_file_is_one_clear_error(tmp_path, change, message) -> None:
    good = _verifier().to_dict()
    changed = change(good)
    path = tmp_path / "bad.verifier.json"
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(VerifierError, match=message) as err:
        load_verifier(path)
    assert str(path) in str(err.value)


def test_a_verifier_fitted_for_another_classifier_is_refused_at_load(tmp_path, untrained_checkpoint) -> None:
    # It used to be left unused with a warning; in a bundle it is an error that names the file.
    assert Predictor(untrained_checkpoint, backend="torch").verifier is None  # a bare checkpoint: none
    plain = _bundle(tmp_path / "plain", untrained_checkpoint, {})
    assert Predictor(plain.root, backend="torch").verifier is None  # a bundle without one: none
    another = _verifier(256, "0" * 64)
    other = _bundle(tmp_path / "other", untrained_checkpoint, {("blazeface", "fp32"): another})
    with pytest.raises(VerifierError, match="fitted for another classifier") as err:
        Predictor(other.root, backend="torch")
    assert "blazeface.fp32.json" in str(err.value)
    assert Predictor(other.root, backend="torch", verify=False).verifier is None  # not read when off


def test_a_verifier_of_another_feature_count_is_refused_at_load(tmp_path, untrained_checkpoint) -> None:
    sha = file_digest(untrained_checkpoint)
    narrow = _bundle(tmp_path / "narrow", untrained_checkpoint, {("blazeface", "fp32"): _verifier(2, sha)})
    with pytest.raises(VerifierError, match="weighs 2 classifier features, but classifier.pt gives 256"):
        Predictor(narrow.root, backend="torch")
    fits = _bundle(tmp_path / "fits", untrained_checkpoint, {("blazeface", "fp32"): _verifier(256, sha)})
    predictor = Predictor(fits.root, backend="torch")
    assert predictor.verifier is not None and predictor.verifier.feature_count == 256


def test_the_bundled_verifiers_belong_to_the_bundled_model() -> None:
    bundle = open_bundle()
    assert bundle.root == DEFAULT_MODEL and bundle.classifier.name == "classifier.pt"
    sha = file_digest(bundle.classifier)
    assert {(v.detector, v.precision) for v in bundle.verifiers} == {
        (d, p) for d in ("blazeface", "blazeface-fast", "retinaface-960", "retinaface-640", "retinaface-480")
        for p in ("fp32", "int8")}
    assert bundle.photo_detector == "retinaface-960" and bundle.video_detector == "retinaface-480"
    for entry in bundle.verifiers:
        verifier = load_verifier(entry.path)
        assert verifier.checkpoint_sha256 == sha and verifier.feature_count == 1280
        assert 0 < verifier.threshold < 1 and 0 < entry.candidate_threshold < 1


def test_each_precision_has_its_verifier_and_int8_falls_back_to_fp32_with_a_warning(tmp_path, caplog) -> None:
    bundle = open_bundle()
    fp32_entry, int8_entry = (bundle.verifier_entry("blazeface", precision) for precision in ("fp32", "int8"))
    assert fp32_entry.precision == "fp32" and int8_entry.precision == "int8"
    fp32, int8 = load_verifier(fp32_entry.path), load_verifier(int8_entry.path)
    assert int8.threshold != fp32.threshold  # fitted on int8 features
    assert Predictor(detector="blazeface").verifier.threshold == int8.threshold  # int8 by default
    assert Predictor(detector="blazeface", precision="fp32").verifier.threshold == fp32.threshold
    # The bundled model with its fp32 verifier only (the copy has the same hash: its int8 twin is cached).
    only_fp32 = _bundle(tmp_path / "fp32-only", bundle.classifier, {("blazeface", "fp32"): fp32_entry.path})
    with caplog.at_level(logging.WARNING):
        fallback = only_fp32.verifier_entry("blazeface", "int8")
    assert fallback is not None and fallback.precision == "fp32"
    assert "no int8 verifier for blazeface: using the fp32 one" in caplog.text
    assert only_fp32.verifier_entry("blazeface-fast", "int8") is None  # no fp32 one to fall back to either
    predictor = Predictor(only_fp32.root)
    assert predictor.precision == "int8" and predictor.verifier.threshold == fp32.threshold


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
    # Down to a detector score of 0.2 the detector alone keeps look-alikes on the sleeve, the
    # helmet and the flag; the verifier, from the same candidates, keeps her face only.
    plain = Predictor(detector="blazeface", verify=False, face_threshold=0.2).predict(astronaut)
    assert len(plain) >= 4
    verified = Predictor(detector="blazeface", face_threshold=0.2).predict(astronaut)
    assert len(verified) == 1
    face = verified.faces[0]
    x0, y0, x1, y1 = face.box
    assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 200  # her face
    assert face.detection_score > 0.9
    default = Predictor(detector="blazeface").predict(astronaut).faces  # its default: her face alone
    assert len(default) == 1 and abs(default[0].box[0] - x0) < 2 and abs(default[0].box[3] - y1) < 2
    # the bundle's photo path (RetinaFace from 0.2, its own verifier): her face alone, the same face
    retina = Predictor().predict(astronaut).faces
    assert len(retina) == 1 and retina[0].detection_score > 0.9
    rx0, ry0, rx1, ry1 = retina[0].box
    assert 150 < (rx0 + rx1) / 2 < 300 and 50 < (ry0 + ry1) / 2 < 200


def test_the_video_detector_has_its_own_verifier_and_it_drops_the_look_alikes() -> None:
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    photo_predictor = Predictor(detector="blazeface")
    video = photo_predictor.with_detector("blazeface-fast", face_threshold=0.2)
    # fitted on the fast detector's candidates (no second looks): its own file and threshold
    own = load_verifier(open_bundle().verifier_entry("blazeface-fast", "int8").path)
    assert own.first_stage is None
    assert video.verifier.coef.tolist() == own.coef.tolist() != photo_predictor.verifier.coef.tolist()
    assert photo_predictor.with_detector("blazeface").verifier is photo_predictor.verifier
    plain = Predictor(verify=False).with_detector("blazeface-fast", face_threshold=0.2).predict(astronaut)
    assert len(plain) >= 3  # her face, and look-alikes on the flag and the sleeve
    verified = video.predict(astronaut).faces
    assert len(verified) == 1 and verified[0].detection_score > 0.9
    x0, y0, x1, y1 = verified[0].box
    assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 200  # her face
    assert Predictor(verify=False).with_detector("blazeface-fast").verifier is None


def _two_stage(low: float, high: float) -> FaceVerifier:
    # both stages read the first-pass score alone: probability sigmoid(4 x (score - 0.5))
    n = 7
    coef = np.r_[4.0, np.zeros(n - 1)]
    stage = FirstStage(np.full(n, 0.5), np.ones(n), coef, 0.0, low, high)
    return FaceVerifier("abc", np.full(n, 0.5), np.ones(n), -coef, 0.0, 0.5, first_stage=stage)


def test_the_first_stage_asks_for_second_looks_only_where_it_is_unsure() -> None:
    boxes = np.tile([0.0, 0.0, 10.0, 10.0], (3, 1))
    first = np.array([0.0, 0.5, 1.0])  # first stage: 0.12, 0.5, 0.88
    asked = []

    def second_looks(rows: np.ndarray) -> np.ndarray:
        asked.append(rows.tolist())
        return np.zeros((len(rows), 2))

    face = _two_stage(0.3, 0.7).decide(boxes, first, np.zeros((3, 2)), (100, 100), second_looks)
    assert asked == [[1]]
    # the settled ones keep the first stage's probability, the unsure one gets the full verifier's
    # (which here reads the score the other way round, to show which stage answered)
    assert face.round(2).tolist() == [0.12, 0.5, 0.88]
    asked.clear()
    face = _two_stage(0.0, 1.0).decide(boxes, first, np.zeros((3, 2)), (100, 100), second_looks)
    assert asked == [[0, 1, 2]] and face.round(2).tolist() == [0.88, 0.5, 0.12]


@pytest.mark.parametrize("change, message", [
    (lambda s: {**s, "low": 0.9, "high": 0.1}, "0 <= low <= high <= 1"),
    (lambda s: {**s, "coef": s["coef"][:-1]}, "must each be 7 finite numbers"),
    (lambda s: {**s, "scale": [0.0] * 7}, "every scale of the first stage must be positive"),
    (lambda s: {k: v for k, v in s.items() if k != "high"}, "first stage with a missing or bad field"),
])
def test_a_bad_first_stage_is_one_clear_error(tmp_path, change, message) -> None:
    good = _two_stage(0.3, 0.7).to_dict()
    path = tmp_path / "bad.verifier.json"
    path.write_text(json.dumps({**good, "first_stage": change(good["first_stage"])}))
    with pytest.raises(VerifierError, match=message):
        load_verifier(path)


def test_a_two_stage_verifier_loads_back(tmp_path) -> None:
    _two_stage(0.3, 0.7).save(tmp_path / "v.json")
    stage = load_verifier(tmp_path / "v.json").first_stage
    assert stage is not None and (stage.low, stage.high) == (0.3, 0.7) and stage.coef[0] == 4.0


def test_a_threshold_given_by_the_user_applies_to_the_face_probability() -> None:
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    assert Predictor(face_threshold=0.999999).predict(astronaut).faces == []


def test_detect_turns_the_verifier_off_on_request(tmp_path) -> None:
    from skimage import data

    from maskdetect.cli import main

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    counts = {}
    for flags in ([], ["--no-verifier"]):
        out = tmp_path / ("plain" if flags else "verified")
        argv = ["detect", str(tmp_path / "astronaut.png"), "--out", str(out), "--no-images",
                "--detector", "blazeface", "--face-threshold", "0.2", *flags]
        assert main(argv) == 0
        record = json.loads((out / "detections.jsonl").read_text().splitlines()[0])
        counts[bool(flags)] = len(record["faces"])
    assert counts[False] == 1 and counts[True] >= 4


def test_the_classifier_runs_many_faces_in_bounded_chunks() -> None:
    # ONNX Runtime keeps the memory of the largest batch it ran: a crowd of candidates is classified
    # in chunks of at most MAX_BATCH, in order.
    from maskdetect.runtime import MAX_BATCH, load_classifier

    classifier = load_classifier(DEFAULT_MODEL, "onnx")
    size = classifier.preprocessing.input_size
    batch = np.random.default_rng(0).normal(size=(2 * MAX_BATCH + 3, 3, size, size)).astype(np.float32)
    whole_logits, whole_features = classifier._logits_and_features(batch)
    seen = []
    inner = classifier._logits_and_features

    def recorded(part):
        seen.append(len(part))
        return inner(part)

    classifier._logits_and_features = recorded
    try:
        logits, features = classifier.logits_and_features(batch)
    finally:
        classifier._logits_and_features = inner
    assert seen == [MAX_BATCH, MAX_BATCH, 3]
    np.testing.assert_allclose(logits, whole_logits, atol=1e-4)
    np.testing.assert_allclose(features, whole_features, atol=1e-4)


def test_a_lower_threshold_keeps_a_superset_of_the_faces_so_a_sweep_agrees(shared_data) -> None:
    # The threshold is the verifier's alone: it once also lowered the detector's candidate threshold,
    # so a run at 0.1 kept other candidates, and evaluate-detect's --sweep disagreed with a run at
    # the default (ilc2021-dev precision 0.73 against 0.82 at the same threshold).
    default, low = Predictor(detector="blazeface"), Predictor(detector="blazeface", face_threshold=0.1)
    assert low.face_threshold == 0.1
    assert low.detector.config == default.detector.config
    # the candidates come from the score the bundle's verifier was fitted on
    fitted_on = open_bundle().verifier_entry("blazeface", default.precision).candidate_threshold
    assert low.candidate_threshold == default.candidate_threshold == fitted_on
    photo = shared_data / "ilc2021-dev" / "JPEGImages" / "50f8d5423e71e4b9384cfcd8475285c7.jpg"  # a crowd
    kept = [f.box for f in default(photo)]
    assert kept and kept == [f.box for f in low(photo) if f.detection_score >= default.face_threshold]
    # a twin behind another detector: the same rule
    video = default.with_detector("blazeface", face_threshold=0.5)
    assert video.face_threshold == 0.5 and video.detector.config == default.detector.config
