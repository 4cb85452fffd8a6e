"""The int8 twin of a classifier: made once, cached by content, atomic, and close to float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from maskdetect import quantize
from maskdetect.export import cached_onnx_path
from maskdetect.fileio import user_cache_dir
from maskdetect.predict import Predictor
from maskdetect.quantize import calibration_crops, int8_path, quantize_onnx
from maskdetect.runtime import DEFAULT_MODEL, load_classifier, resolve_checkpoint


def _sample_crops(preprocessing, count: int = 48) -> np.ndarray:
    return calibration_crops(preprocessing, limit=count)


def test_the_bundled_int8_model_is_quantized_and_reads_features_as_float32_does():
    fp32 = load_classifier(precision="fp32")
    int8 = load_classifier(precision="int8")
    twin = int8_path(cached_onnx_path(resolve_checkpoint(DEFAULT_MODEL)))
    assert twin.is_file() and twin.parent == user_cache_dir("onnx")  # in the per-user cache
    assert not [p for p in DEFAULT_MODEL.rglob("*") if p.suffix == ".onnx"]  # nothing beside the model
    ops = {node.op_type for node in onnx.load(str(twin)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # not a float copy under another name
    assert int8.preprocessing == fp32.preprocessing  # the metadata travelled: the twin runs alone
    # Labels are compared on labelled faces, on two kinds of CPU, in test_quantize_cpus.py.
    crops = _sample_crops(fp32.preprocessing, 64)
    _, features8 = int8.logits_and_features(crops)
    _, features = fp32.logits_and_features(crops)
    norms = np.linalg.norm(features, axis=1) * np.linalg.norm(features8, axis=1)
    cosine = (features * features8).sum(1) / norms
    assert cosine.mean() > 0.97  # the face verifier reads these features


def test_the_predictor_runs_int8_on_onnx_and_fp32_on_torch(untrained_checkpoint):
    assert Predictor(untrained_checkpoint).precision == "int8"
    assert Predictor(untrained_checkpoint, precision="fp32").precision == "fp32"
    assert Predictor(untrained_checkpoint, backend="torch").precision == "fp32"


def test_bad_precisions_are_clear_errors(untrained_checkpoint):
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        load_classifier(untrained_checkpoint, precision="int4")
    with pytest.raises(ValueError, match="int8 runs on backend 'onnx' only"):
        load_classifier(untrained_checkpoint, "torch", precision="int8")


def test_a_changed_export_gets_a_new_twin_never_the_stale_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDETECT_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model.onnx"
    model.write_bytes(b"one")
    first = int8_path(model)
    assert first.parent == tmp_path / "cache" / "onnx"  # never beside the export
    model.write_bytes(b"two")
    assert int8_path(model) != first


def test_an_interrupted_quantization_leaves_nothing_behind(untrained_checkpoint, tmp_path, monkeypatch):
    classifier = load_classifier(untrained_checkpoint)
    exported = cached_onnx_path(untrained_checkpoint)
    crops = _sample_crops(classifier.preprocessing, 8)

    def killed(model, path, *args, **kwargs):  # dies half way through writing the twin
        Path(path).write_bytes(b"half a graph")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx, "save", killed)
    target = tmp_path / "twin.onnx"
    with pytest.raises(KeyboardInterrupt):
        quantize_onnx(exported, target, crops)
    assert list(tmp_path.iterdir()) == []  # no half-written twin, no scratch files


def test_a_corrupt_calibration_photo_is_skipped_and_no_candidate_is_a_clear_error(tmp_path, caplog):
    from PIL import Image

    from maskdetect.preprocess import Preprocessing

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), "grey").save(blank)
    with pytest.raises(ValueError, match="no face candidate in 2 calibration photos"):
        calibration_crops(Preprocessing(input_size=32), [bad, blank])
    assert "bad.jpg" in caplog.text
    sample = sorted(quantize.SAMPLE_PHOTOS.iterdir())[:3]
    assert len(calibration_crops(Preprocessing(input_size=32), [bad, *sample])) > 0


def test_evaluate_detect_runs_the_precision_asked_for_and_says_which(tmp_path):
    import json

    from maskdetect.cli import main

    sample = quantize.SAMPLE_PHOTOS.parent
    reports = {}
    for precision in ("fp32", "int8"):
        out = tmp_path / f"{precision}.json"
        args = ["evaluate-detect", str(sample), "--limit", "3", "--precision", precision, "-o", str(out)]
        assert main(args) == 0
        reports[precision] = json.loads(out.read_text())
    assert [reports[p]["classifier_precision"] for p in ("fp32", "int8")] == ["fp32", "int8"]
    default = tmp_path / "default.json"
    assert main(["evaluate-detect", str(sample), "--limit", "3", "-o", str(default)]) == 0
    assert json.loads(default.read_text())["classifier_precision"] == "int8"


def test_without_calibration_photos_the_default_falls_back_to_float32_and_int8_by_name_is_a_clear_error(
        tmp_path, monkeypatch, caplog):
    import logging

    import torch

    from maskdetect.checkpoint import make_checkpoint, save_checkpoint
    from maskdetect.models import create_model
    from maskdetect.preprocess import Preprocessing

    monkeypatch.setenv("MASKDETECT_CACHE_DIR", str(tmp_path / "cache"))  # a cold cache: no twin made yet
    torch.manual_seed(7)  # a model of its own
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(make_checkpoint(create_model("small_cnn"), "small_cnn", Preprocessing(32)), checkpoint)
    monkeypatch.setattr(quantize, "SAMPLE_PHOTOS", tmp_path / "stripped-install")
    with caplog.at_level(logging.WARNING):
        predictor = Predictor(checkpoint)
    assert predictor.precision == "fp32" and len(predictor(np.zeros((64, 64, 3), np.uint8))) == 0
    assert "could not make its int8 twin" in caplog.text and "running the float32 classifier" in caplog.text
    with pytest.raises(quantize.QuantizeError, match="could not make its int8 twin.*stripped-install"):
        Predictor(checkpoint, precision="int8")
    cached = [p.name for p in (tmp_path / "cache" / "onnx").iterdir()]
    assert cached and not any(".int8-q" in name for name in cached)  # the export, no twin
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "model.pt"]  # nothing beside the model


def test_the_calibration_does_not_follow_the_detectors_defaults(monkeypatch):
    # A twin is cached under its recipe's name, and the face verifiers were fitted on that twin's
    # features: a change to the photo detector's defaults (its resize, its thresholds) must not
    # change the calibration crops and so, silently, the twin a fresh install makes.
    import dataclasses

    from maskdetect.faces import blazeface
    from maskdetect.preprocess import Preprocessing

    sample = sorted(quantize.SAMPLE_PHOTOS.iterdir())[:2]
    pre = Preprocessing(input_size=32)
    quantize._candidates.cache_clear()
    before = calibration_crops(pre, sample, limit=20)
    changed = dataclasses.replace(blazeface.CONFIGS["accurate"], area_resize=True, candidate_threshold=0.6)
    monkeypatch.setitem(blazeface.CONFIGS, "accurate", changed)
    quantize._candidates.cache_clear()
    after = calibration_crops(pre, sample, limit=20)
    quantize._candidates.cache_clear()
    assert after.shape == before.shape and np.array_equal(after, before)
