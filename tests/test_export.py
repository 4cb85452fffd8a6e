"""ONNX export: same outputs as torch, dynamic batch, preprocessing in the metadata, atomic cache in
the per-user cache folder (never beside the model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskdetect.checkpoint import make_checkpoint, save_checkpoint
from maskdetect.export import (
    EXPORT_VERSION,
    cached_onnx_path,
    ensure_onnx,
    export_onnx,
    onnx_preprocessing,
)
from maskdetect.faces.crop import CropPolicy
from maskdetect.fileio import file_digest
from maskdetect.models import create_model
from maskdetect.preprocess import Preprocessing
from maskdetect.runtime import load_classifier

PRE = Preprocessing(input_size=48, crop_policy=CropPolicy(scale=1.5))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("small_cnn").eval()
    ckpt = make_checkpoint(model, "small_cnn", PRE)
    path = export_onnx(ckpt, tmp_path_factory.mktemp("onnx") / "m.onnx")
    return model, ckpt, path


def test_efficientnet_lite0_exports_with_its_same_padding(tmp_path):
    # TensorFlow-style padding is computed from the input's shape inside forward(): it must trace.
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0").eval()
    ckpt = make_checkpoint(model, "efficientnet_lite0", Preprocessing(input_size=64))
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = load_classifier(export_onnx(ckpt, tmp_path / "lite.onnx"))(x)
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_outputs_equal_torch_within_1e4(exported, batch):
    model, _, path = exported
    x = np.random.default_rng(batch).normal(size=(batch, 3, 48, 48)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = load_classifier(path)(x)
    assert got.shape == (batch, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_preprocessing_travels_in_the_metadata(exported):
    assert onnx_preprocessing(exported[2]) == PRE


def test_export_writes_one_self_contained_file(exported):
    folder = exported[2].parent
    assert [p.name for p in folder.iterdir()] == ["m.onnx"]  # no external data, no temp leftovers


def test_cache_is_keyed_by_checkpoint_content_and_reused(tmp_path, monkeypatch, exported):
    monkeypatch.setenv("MASKDETECT_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    ckpt_path = folder / "model.pt"
    save_checkpoint(exported[1], ckpt_path)
    first = ensure_onnx(exported[1], ckpt_path)
    assert first == tmp_path / "cache" / "onnx" / f"{file_digest(ckpt_path)[:16]}.v{EXPORT_VERSION}.onnx"
    assert first.is_file() and [p.name for p in folder.iterdir()] == ["model.pt"]  # nothing beside it
    stamp = first.stat().st_mtime_ns
    assert ensure_onnx(exported[1], ckpt_path) == first and first.stat().st_mtime_ns == stamp
    torch.manual_seed(1)
    save_checkpoint(make_checkpoint(create_model("small_cnn"), "small_cnn", PRE), ckpt_path)
    assert cached_onnx_path(ckpt_path) != first


def test_the_cache_folder_is_the_users_and_nothing_is_written_beside_an_opened_model(
        tmp_path, monkeypatch, exported):
    # It used to sit beside the checkpoint when that folder was writable; now always in the per-user
    # cache: $MASKDETECT_CACHE_DIR, else $XDG_CACHE_HOME/maskdetect, else ~/.cache/maskdetect; the
    # temp folder when none of those can be written.
    from maskdetect.predict import Predictor

    folder = tmp_path / "model"
    folder.mkdir()
    ckpt_path = folder / "model.pt"
    save_checkpoint(exported[1], ckpt_path)
    monkeypatch.delenv("MASKDETECT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cached_onnx_path(ckpt_path).parent == tmp_path / "home" / ".cache" / "maskdetect" / "onnx"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cached_onnx_path(ckpt_path).parent == tmp_path / "xdg" / "maskdetect" / "onnx"
    monkeypatch.setenv("MASKDETECT_CACHE_DIR", str(tmp_path / "mine"))
    assert cached_onnx_path(ckpt_path).parent == tmp_path / "mine" / "onnx"
    predictor = Predictor(ckpt_path, precision="fp32", detector="haar")
    assert predictor.checkpoint_path == ckpt_path
    assert [p.name for p in folder.iterdir()] == ["model.pt"]  # opened, exported, nothing beside it
    assert cached_onnx_path(ckpt_path).is_file()
    unwritable = str(tmp_path / "mine" / "onnx")
    monkeypatch.setattr("maskdetect.fileio.os.access", lambda p, mode: str(p) != unwritable)
    assert cached_onnx_path(ckpt_path).parent.parent.name.startswith("maskdetect-cache-")  # the temp folder


def test_not_a_maskdetect_onnx_file_is_a_clear_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save_model(helper.make_model(graph), str(tmp_path / "plain.onnx"))
    with pytest.raises(ValueError, match="plain.onnx.*metadata"):
        onnx_preprocessing(tmp_path / "plain.onnx")
