"""The model bundle: one folder, opened without writing anything beside it; its manifest treated as
hostile; bundles made from a checkpoint and given a verifier by the library and the commands; the
two thresholds and the one options type."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskdetect import ModelOptions, Predictor, ServeOptions, open_bundle
from maskdetect.bundle import DEFAULT_BUNDLE, MANIFEST, BundleError, write_manifest
from maskdetect.bundler.build import FitOptions, create_bundle, fit_bundle_verifier
from maskdetect.bundler.fit import fit_logistic

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "maskdetect" / "assets" / "sample" / "andrewmvd"
PHOTO = SAMPLE / "images" / "maksssksksss52.jpg"


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_opening_a_bundle_writes_nothing_beside_it(tmp_path, monkeypatch):
    bundle = tmp_path / "model"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    cache = tmp_path / "cache"
    monkeypatch.setenv("MASKDETECT_CACHE_DIR", str(cache))
    monkeypatch.setattr("maskdetect.runtime._CACHE", {})  # a model loaded earlier in this process: load again
    before = _listing(bundle)
    predictor = Predictor(str(bundle), precision="fp32")
    faces = predictor(PHOTO)
    assert _listing(bundle) == before  # no export, no int8 twin, no verifier search beside it
    assert [p.suffix for p in (cache / "onnx").iterdir()] == [".onnx"]  # the export went to the cache
    assert predictor.verifier is not None and len(faces) >= 15


def test_a_read_only_bundle_opens_and_predicts(tmp_path, monkeypatch):
    bundle = tmp_path / "model"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    for path in [bundle, *bundle.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    monkeypatch.setenv("MASKDETECT_CACHE_DIR", str(tmp_path / "cache"))
    try:
        assert len(Predictor(str(bundle), precision="fp32", detector="blazeface-fast")(PHOTO)) >= 5
    finally:
        for path in [bundle, *bundle.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def _manifest(root: Path, **changes: object) -> Path:
    shutil.copytree(DEFAULT_BUNDLE, root)
    data = json.loads((root / MANIFEST).read_text())
    for key, value in changes.items():
        if key == "verifier":
            data["verifiers"][0].update(value)
        else:
            data[key] = value
    (root / MANIFEST).write_text(json.dumps(data))
    return root


@pytest.mark.parametrize(("changes", "message"), [
    ({"verifier": {"file": "../../etc/passwd"}}, "must be a path inside the bundle"),
    ({"verifier": {"file": "/etc/passwd"}}, "must be a path inside the bundle"),
    ({"verifier": {"sha256": "0" * 64}}, "does not have the sha256"),
    ({"verifier": {"detector": "yolo"}}, "choose one of"),
    ({"verifier": {"precision": "int4"}}, "choose one of fp32, int8"),
    ({"verifier": {"candidate_threshold": 1.5}}, "must lie between 0 and 1"),
    ({"verifier": {"candidate_threshold": True}}, "must lie between 0 and 1"),
    # issue 31.8: math.isfinite raised OverflowError, naming no file
    ({"verifier": {"candidate_threshold": 10**400}}, "must lie between 0 and 1, got 1000"),
    ({"detectors": {"photo": "yolo"}}, "detectors.photo"),
    ({"format": "something-else"}, "not a model bundle manifest"),
    ({"verifiers": {"a": 1}}, "'verifiers' must be a list"),
])
def test_a_hostile_manifest_is_refused_naming_it(tmp_path, changes, message):
    root = _manifest(tmp_path / "model", **changes)
    with pytest.raises(BundleError, match=message) as error:
        open_bundle(root)
    assert str(root / MANIFEST) in str(error.value)


def test_a_manifest_that_is_no_json_or_names_a_missing_file_is_refused(tmp_path):
    root = _manifest(tmp_path / "a")
    for text in ("[" * 100_000, "9" * 5000):  # too deep; more digits than Python converts (issue 31.8)
        (root / MANIFEST).write_text(text)
        with pytest.raises(BundleError, match=f"{root / MANIFEST}: not a readable bundle manifest"):
            open_bundle(root)
    root = _manifest(tmp_path / "b")
    (root / "verifiers" / "blazeface.int8.json").unlink()
    with pytest.raises(FileNotFoundError, match="verifiers/blazeface.int8.json is missing"):
        open_bundle(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a model bundle"):
        Predictor(str(tmp_path / "empty"))


def test_a_verifier_of_another_classifier_fails_at_load_naming_its_file(tmp_path):
    root = tmp_path / "model"
    shutil.copytree(DEFAULT_BUNDLE, root)
    verifier = root / "verifiers" / "blazeface.fp32.json"
    data = json.loads(verifier.read_text())
    data["checkpoint_sha256"] = "0" * 64
    verifier.write_text(json.dumps(data))
    write_manifest(root, json.loads((root / MANIFEST).read_text()))  # the sha256 of the edited file
    with pytest.raises(ValueError, match="blazeface.fp32.json: fitted for another classifier"):
        Predictor(str(root), precision="fp32", detector="blazeface")


def test_a_bare_checkpoint_runs_without_a_verifier_and_says_so_once(tmp_path, caplog, monkeypatch):
    import maskdetect.predict

    monkeypatch.setattr(maskdetect.predict, "_SAID_UNVERIFIED", set())
    checkpoint = tmp_path / "best.pt"
    shutil.copy(DEFAULT_BUNDLE / "classifier.pt", checkpoint)
    with caplog.at_level(logging.WARNING, logger="maskdetect.predict"):
        first = Predictor(str(checkpoint), precision="fp32")
        Predictor(str(checkpoint), precision="fp32")
    said = [r.message for r in caplog.records if "no face verifier" in r.message]
    assert len(said) == 1 and "maskdetect fit-verifier" in said[0]
    assert first.verifier is None
    assert first.detector.name == "retinaface-960"  # a bare checkpoint runs behind the default detector
    assert first.face_threshold == first.detector.threshold  # and the detector's score decides


def test_the_two_thresholds_mean_one_thing_each():
    verified = Predictor(precision="fp32", candidate_threshold=0.35, face_threshold=0.5)
    assert verified.verifier is not None and verified.detector.name == "retinaface-960"
    assert verified.detector.candidate_threshold == 0.35  # what the detector hands over
    blaze = Predictor(precision="fp32", detector="blazeface", candidate_threshold=0.35)
    assert blaze.detector.config.candidate_threshold == 0.35 and blaze.candidate_threshold == 0.35
    assert verified.face_threshold == 0.5  # what the verifier's probability must reach
    default = Predictor(precision="fp32")
    assert default.face_threshold == default.verifier.threshold
    fitted_on = open_bundle().verifier_entry("retinaface-960", "fp32").candidate_threshold
    assert default.candidate_threshold == fitted_on
    alone = Predictor(precision="fp32", verify=False, face_threshold=0.6)
    assert alone.verifier is None and alone.detector.threshold == 0.6
    video = default.video_twin()
    assert video.detector.name == "retinaface-480" and video.face_threshold == video.verifier.threshold


@pytest.mark.parametrize("bad", [{"face_threshold": 0.0}, {"candidate_threshold": 1.0},
                                 {"face_threshold": float("nan")}, {"detector": "yolo"},
                                 {"precision": "int8", "backend": "torch"}, {"classifier_threads": 0}])
def test_model_options_refuse_bad_values(bad):
    with pytest.raises(ValueError):
        ModelOptions(**bad)


def test_serve_options_carry_the_model_options_through_json():
    options = ServeOptions(model=ModelOptions(detector="blazeface-fast", face_threshold=0.4))
    assert ServeOptions.from_json(options.to_json()) == options


@pytest.mark.parametrize("command", ["detect", "serve", "batch", "evaluate-detect"])
@pytest.mark.parametrize("old", ["--threshold", "--detection-threshold"])
def test_the_old_threshold_option_names_the_two_new_ones(command, old):
    done = subprocess.run([sys.executable, "-m", "maskdetect", command, "x.jpg", old, "0.5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--face-threshold" in done.stderr and "--candidate-threshold" in done.stderr


def test_fit_logistic_matches_sklearn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)) * [1, 2, 3, 1, 1, 5]
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=400) > 1.2).astype(int)  # unbalanced classes
    ours = fit_logistic(x, y, c=0.01)
    theirs = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, class_weight="balanced", tol=1e-10,
                                                                max_iter=10_000)).fit(x, y)
    np.testing.assert_allclose(ours.coef, theirs[-1].coef_[0], atol=1e-4)
    np.testing.assert_allclose(ours.probability(x), theirs.predict_proba(x)[:, 1], atol=1e-4)


def test_a_bundle_from_a_checkpoint_gets_a_verifier_that_the_predictor_uses(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["maskdetect", "fit-verifier"])
    bundle = create_bundle(DEFAULT_BUNDLE / "classifier.pt", tmp_path / "mine", data="andrewmvd sample, CC0")
    assert bundle.verifiers == () and Predictor(str(bundle.root), precision="fp32").verifier is None
    with pytest.raises(FileExistsError):
        create_bundle(DEFAULT_BUNDLE / "classifier.pt", tmp_path / "mine")
    result = fit_bundle_verifier(bundle.root, FitOptions(photos=SAMPLE, precision="fp32", limit=25))
    assert re.fullmatch(r"verifiers/retinaface-960\.fp32\.[0-9a-f]{12}\.json", result["file"])
    assert 0 < result["out_of_fold"]["threshold"] < 1 and result["out_of_fold"]["recall_32px"] >= 0.9
    reopened = open_bundle(bundle.root)
    entry = reopened.verifier_entry("retinaface-960", "fp32")
    assert entry is not None and entry.candidate_threshold == 0.2
    predictor = Predictor(str(bundle.root), precision="fp32")
    assert predictor.verifier is not None and predictor.face_threshold == result["out_of_fold"]["threshold"]
    assert len(predictor(PHOTO)) >= 15
    made = json.loads((bundle.root / MANIFEST).read_text())["verifiers"][0]
    assert made["made_by"].startswith("maskdetect fit-verifier") and "25 photos" in made["data"]


def test_the_bundle_and_fit_verifier_commands(tmp_path):
    run = [sys.executable, "-m", "maskdetect"]
    made = subprocess.run([*run, "bundle", str(DEFAULT_BUNDLE / "classifier.pt"), "--out",
                           str(tmp_path / "b")], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert "no face verifier yet" in made.stdout
    fitted = subprocess.run([*run, "fit-verifier", str(tmp_path / "b"), str(SAMPLE), "--precision", "fp32",
                             "--detector", "blazeface-fast", "--precision-target", "0.9", "--limit", "20"],
                            capture_output=True, text=True, timeout=300)
    assert fitted.returncode == 0, fitted.stderr
    assert json.loads(fitted.stdout)["file"].startswith("verifiers/blazeface-fast.fp32.")
    assert open_bundle(tmp_path / "b").verifier_entry("blazeface-fast", "fp32").candidate_threshold == 0.4
    missing = subprocess.run([*run, "fit-verifier", str(tmp_path / "nope"), str(SAMPLE)],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_every_options_type_a_public_call_takes_is_public():
    import inspect
    import re

    import maskdetect

    named = set()
    for name in maskdetect.__all__:
        value = getattr(maskdetect, name)
        targets = [value.__init__] if inspect.isclass(value) else [value] if callable(value) else []
        for target in targets:
            for parameter in inspect.signature(target).parameters.values():
                annotation = str(parameter.annotation)
                named |= set(re.findall(r"\b[A-Z]\w*(?:Options|Settings|Config)\b", annotation))
    assert {"ModelOptions", "BatchOptions", "EvaluateDetectOptions", "FitOptions"} <= named
    assert named <= set(maskdetect.__all__)


def test_retinaface_candidates_get_a_one_stage_verifier_from_their_candidate_threshold(tmp_path, monkeypatch):
    from maskdetect.verify import load_verifier

    monkeypatch.setattr(sys, "argv", ["maskdetect", "fit-verifier"])
    bundle = create_bundle(DEFAULT_BUNDLE / "classifier.pt", tmp_path / "rf", photo_detector="retinaface")
    result = fit_bundle_verifier(bundle.root, FitOptions(photos=SAMPLE, precision="fp32", limit=15,
                                                         candidate_threshold=0.2))
    assert result["detector"] == "retinaface"
    entry = open_bundle(bundle.root).verifier_entry("retinaface", "fp32")
    assert entry.candidate_threshold == 0.2
    assert load_verifier(entry.path).first_stage is None  # no second looks: nothing for a first stage
    predictor = Predictor(str(bundle.root), precision="fp32")
    assert predictor.detector.name == "retinaface" and predictor.verifier is not None
    assert predictor.candidate_threshold == 0.2
    assert predictor.face_threshold == load_verifier(entry.path).threshold
    low = predictor.detector.candidates(Image.open(PHOTO))
    assert (low.first >= 0.2).all() and (low.first < predictor.detector.threshold).any()
    assert len(predictor(PHOTO)) >= 15


def test_fitting_a_verifier_again_replaces_it_and_leaves_the_bundle_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["maskdetect", "fit-verifier"])
    bundle = create_bundle(DEFAULT_BUNDLE / "classifier.pt", tmp_path / "b", photo_detector="retinaface-640")
    options = FitOptions(photos=SAMPLE, precision="fp32", limit=8, candidate_threshold=0.3)
    first = fit_bundle_verifier(bundle.root, options)
    second = fit_bundle_verifier(bundle.root, FitOptions(photos=SAMPLE, precision="fp32", limit=10,
                                                          candidate_threshold=0.3))
    assert first["file"] != second["file"]  # another fit, another file: the manifest switched at once
    reopened = open_bundle(bundle.root)  # every sha256 the manifest states holds
    assert [v.path.name for v in reopened.verifiers] == [Path(second["file"]).name]
    assert sorted(p.name for p in (bundle.root / "verifiers").iterdir()) == [Path(second["file"]).name]


def test_a_trust_floor_keeps_what_the_detector_is_sure_of_and_is_checked_at_load(tmp_path):
    from maskdetect.verify import FaceVerifier, VerifierError, load_verifier

    # a regression that turns everything down; the floor keeps the candidate scored 0.97, not the 0.6
    verifier = FaceVerifier("x", np.zeros(6), np.ones(6), np.zeros(6), -10.0, 0.5, trust_score=0.9)
    verifier.save(tmp_path / "v.json")
    loaded = load_verifier(tmp_path / "v.json")
    assert loaded.trust_score == 0.9
    face = loaded.decide(np.array([[0, 0, 50, 50], [60, 0, 90, 30]]), np.array([0.97, 0.6]), np.zeros((2, 1)),
                         (100, 100), lambda rows: np.zeros((len(rows), 2)))
    assert face[0] == pytest.approx(0.97) and face[1] < 0.01
    data = json.loads((tmp_path / "v.json").read_text())
    for bad in (0, 1.5, True, "high"):
        (tmp_path / "bad.json").write_text(json.dumps({**data, "trust_score": bad}))
        with pytest.raises(VerifierError, match="trust_score"):
            load_verifier(tmp_path / "bad.json")
