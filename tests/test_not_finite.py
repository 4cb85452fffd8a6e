"""Issue 31.7: a number that is not finite (NaN, infinity) is never written into detect's JSON Lines,
and a model whose weights are not finite is refused before any photo (as a checkpoint or an ONNX export)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from maskdetect.checkpoint import load_checkpoint, save_checkpoint
from maskdetect.cli import main
from maskdetect.detect.media import detect_files
from maskdetect.results import FaceResult, ImageResult


def _strict(line: str) -> dict:
    # json.loads takes NaN by default; a strict reader (and the JSON standard) does not
    return json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} written into the JSON Lines"))


class _NaNPredictor:
    """Stands in for a model gone wrong after loading: a face whose score is NaN."""

    def predict(self, path: object) -> ImageResult:
        face = FaceResult((1, 1, 20, 20), "covered", math.nan, {"covered": math.nan}, 0.9)
        return ImageResult([face], 48, 48, path=str(path))


def test_a_result_holding_nan_is_written_as_an_error_naming_its_input(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (48, 48)).save(photos / "a.jpg")
    summary = detect_files(_NaNPredictor(), [photos], tmp_path / "out", workers=1, images=False)
    lines = (tmp_path / "out" / "detections.jsonl").read_text().splitlines()
    records = [_strict(line) for line in lines]  # before: "score": NaN, a line no strict reader takes
    assert records == [{"path": str(photos / "a.jpg"), "error": f"{photos / 'a.jpg'}: the result holds a "
                        "number that is not finite (NaN or infinity), so it is not written"}]
    assert summary.failures == [records[0]["error"]]  # so detect exits 1, not 0


def test_detect_refuses_a_checkpoint_with_nan_weights_in_one_line(untrained_checkpoint, tmp_path, capsys):
    # Before: exit 0, every face "covered" with "score": NaN.
    damaged = load_checkpoint(untrained_checkpoint)
    name = next(k for k, v in damaged["state_dict"].items() if v.is_floating_point())
    damaged["state_dict"][name] = torch.full_like(damaged["state_dict"][name], math.nan)
    save_checkpoint(damaged, tmp_path / "nan.pt")
    Image.new("RGB", (48, 48)).save(tmp_path / "a.jpg")
    code = main(["detect", str(tmp_path / "a.jpg"), "--model", str(tmp_path / "nan.pt"), "--detector", "haar",
                 "--out", str(tmp_path / "out"), "--no-images"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"maskdetect: error: {tmp_path / 'nan.pt'}: state_dict {name!r} holds values that are not "
                   "finite (NaN or infinity): the weights of a diverged or damaged model"]


def test_an_onnx_export_with_nan_weights_is_refused_at_load(untrained_checkpoint, tmp_path):
    import onnx
    from onnx import numpy_helper

    from maskdetect.export import export_onnx
    from maskdetect.runtime import load_classifier

    path = export_onnx(load_checkpoint(untrained_checkpoint), tmp_path / "model.onnx")
    model = onnx.load(str(path))
    weight = next(t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    values = numpy_helper.to_array(weight).copy()
    values.flat[0] = math.inf
    weight.CopyFrom(numpy_helper.from_array(values, weight.name))
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match=f"{path}: weight {weight.name!r} holds values that are not finite"):
        load_classifier(path, backend="onnx", precision="fp32")
