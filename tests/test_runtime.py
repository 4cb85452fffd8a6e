"""The one runtime: load_classifier on checkpoints, ONNX exports and dicts; its cache; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskdetect.checkpoint import CheckpointError, make_checkpoint, save_checkpoint
from maskdetect.export import export_onnx
from maskdetect.models import create_model
from maskdetect.predict import Predictor
from maskdetect.preprocess import Preprocessing
from maskdetect.runtime import BACKENDS, load_classifier

PRE = Preprocessing(input_size=32)


def _checkpoint(seed: int) -> dict:
    torch.manual_seed(seed)
    return make_checkpoint(create_model("small_cnn", width=8), "small_cnn", PRE, model_kwargs={"width": 8})


def _batch() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_file_is_loaded_once_and_a_changed_file_is_loaded_again(tmp_path, backend):
    path = tmp_path / "model.pt"
    save_checkpoint(_checkpoint(0), path)
    first = load_classifier(path, backend)
    assert load_classifier(path, backend) is first
    save_checkpoint(_checkpoint(1), path)
    second = load_classifier(path, backend)
    assert second is not first
    assert not np.allclose(second(_batch()), first(_batch()))


def test_onnx_and_torch_give_the_same_logits_and_probabilities(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(_checkpoint(2), path)
    onnx, eager = load_classifier(path, "onnx"), load_classifier(path, "torch")
    np.testing.assert_allclose(onnx(_batch()), eager(_batch()), atol=1e-4)
    probabilities = onnx.probabilities(_batch())
    assert probabilities.dtype == np.float64
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert onnx.classes == eager.classes == PRE.classes


def test_an_exported_onnx_file_runs_with_its_own_preprocessing(untrained_checkpoint, tmp_path):
    from maskdetect.checkpoint import load_checkpoint

    exported = export_onnx(load_checkpoint(untrained_checkpoint), tmp_path / "model.onnx")
    classifier = load_classifier(exported)
    assert classifier.backend == "onnx" and classifier.preprocessing.input_size == 64
    from_onnx = Predictor(exported, face_threshold=0.6)
    from_checkpoint = Predictor(untrained_checkpoint, face_threshold=0.6)
    from skimage.data import astronaut

    faces, expected = from_onnx(astronaut()), from_checkpoint(astronaut())
    assert [f.box for f in faces] == [f.box for f in expected] and len(faces) == 1
    assert faces[0].probabilities == pytest.approx(expected[0].probabilities, abs=1e-5)
    with pytest.raises(ValueError, match="model.onnx: an ONNX export runs only on backend 'onnx'"):
        load_classifier(exported, "torch")


def test_a_file_that_is_neither_is_one_clear_line(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not a model")
    with pytest.raises(CheckpointError) as info:
        Predictor(photo)
    message = str(info.value)
    assert "photo.jpg" in message and "maskdetect train" in message and "maskdetect export" in message
    assert "\n" not in message


def test_a_pickle_with_code_is_refused_without_advising_weights_only_false(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a pickled module, not plain tensors
    with pytest.raises(CheckpointError) as info:
        load_classifier(path)
    message = str(info.value)
    assert "evil.pt" in message and "maskdetect train" in message
    assert "weights_only=False" not in message and "\n" not in message


def test_an_onnx_file_that_is_not_a_maskdetect_export_names_what_was_expected(tmp_path):
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"\x00\x01 not protobuf at all \xff" * 10)
    with pytest.raises(ValueError, match=r"model.onnx: .*`maskdetect export`"):
        load_classifier(garbage)


def test_unknown_backend_lists_the_choices():
    with pytest.raises(ValueError, match="'tensorrt'; choose one of onnx, torch"):
        load_classifier(None, "tensorrt")


def test_the_export_falls_back_to_dynamo_only_when_torchscript_raises(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no TorchScript exporter here")

    monkeypatch.setattr("maskdetect.export._torchscript_export", broken)
    ckpt = _checkpoint(3)
    path = export_onnx(ckpt, tmp_path / "m.onnx")
    eager = load_classifier(ckpt, "torch")
    np.testing.assert_allclose(load_classifier(path)(_batch()), eager(_batch()), atol=1e-4)


def test_features_come_from_both_runtimes_alike_and_from_the_export(tmp_path):
    import onnx

    path = tmp_path / "model.pt"
    save_checkpoint(_checkpoint(3), path)
    onnx_side, torch_side = load_classifier(path, "onnx"), load_classifier(path, "torch")
    (lo, fo), (lt, ft) = onnx_side.logits_and_features(_batch()), torch_side.logits_and_features(_batch())
    assert fo.shape == ft.shape and fo.shape[0] == 3 and fo.shape[1] > 3
    np.testing.assert_allclose(fo, ft, atol=1e-4)
    np.testing.assert_allclose(lo, lt, atol=1e-4)
    np.testing.assert_allclose(onnx_side(_batch()), lo, atol=1e-6)
    exported = export_onnx(_checkpoint(3), tmp_path / "m.onnx")
    assert [o.name for o in onnx.load(str(exported)).graph.output] == ["logits", "features"]
    assert load_classifier(exported).has_features


def test_an_export_without_features_still_runs_but_says_so(tmp_path):
    import onnx

    exported = export_onnx(_checkpoint(4), tmp_path / "m.onnx")
    model = onnx.load(str(exported))
    del model.graph.output[1]  # an export from before the features output
    onnx.save(model, str(tmp_path / "old.onnx"))
    old = load_classifier(tmp_path / "old.onnx")
    assert old(_batch()).shape == (3, 3) and not old.has_features
    with pytest.raises(ValueError, match="gives no features"):
        old.logits_and_features(_batch())
