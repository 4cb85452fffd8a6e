"""`maskdetect explain`: files written for a crop, a photo and a folder; clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskdetect.cli import main
from maskdetect.explain.runner import Explainer, ExplainSettings

SIZE = 32


def _image(path: Path, seed: int = 0, size: tuple[int, int] = (48, 40)) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_explain_one_crop_writes_map_and_overlay(tmp_path: Path, checkpoint: Path, capsys) -> None:
    image = _image(tmp_path / "face.jpg")
    out = tmp_path / "out"
    rc = main(["explain", str(image), "--checkpoint", str(checkpoint), "--no-detect", "--patch", "8",
               "--stride", "4", "--out", str(out), "--backend", "torch", "--raw-probability"])
    assert rc == 0
    heat = np.load(out / "face_occlusion.npy")
    assert heat.shape == (SIZE, SIZE) and heat.dtype == np.float32 and np.isfinite(heat).all()
    assert np.load(out / "face_occlusion_probability.npy").shape == (SIZE, SIZE)
    overlay = Image.open(out / "face_occlusion.png")
    assert overlay.format == "PNG" and overlay.size[0] > 200
    index = json.loads((out / "index.json").read_text())
    assert index[0]["predicted"] in ("covered", "incorrect", "uncovered") and index[0]["windows"] == 49
    assert "face_occlusion.png" in capsys.readouterr().out


def test_explain_folder_skips_corrupt_images_and_writes_a_contact_sheet(
    tmp_path: Path, checkpoint: Path, capsys
) -> None:
    folder = tmp_path / "faces"
    (folder / "covered").mkdir(parents=True)
    _image(folder / "covered" / "a.png", 1)
    _image(folder / "b.jpg", 2)
    _image(folder / "b.png", 3)  # the same stem: its maps must not overwrite b.jpg's
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    rc = main(["explain", str(folder), "--checkpoint", str(checkpoint), "--no-detect", "--method", "gradcam",
               "--out", str(out)])
    assert rc == 0
    assert "broken.jpg" in capsys.readouterr().err
    assert Image.open(out / "contact_sheet.png").format == "PNG"
    assert np.load(out / "covered__a_gradcam.npy").shape == (SIZE, SIZE)
    index = json.loads((out / "index.json").read_text())
    assert len(index) == 3 and len({entry["map"] for entry in index}) == 3
    assert all(Path(entry["map"]).is_file() for entry in index)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--patch", "40"], "patch 40 does not fit the 32x32 crop; allowed: 1 to 32"),
        (["--stride", "0"], "stride 0 is not allowed; allowed: 1 to the patch size"),
        (["--target", "masked"],
         "unknown target class 'masked'; allowed: predicted, covered, incorrect, uncovered"),
        (["--batch-size", "0"], "batch size 0 is not allowed"),
        (["--detector", "yolo"],
         "unknown face detector 'yolo'; allowed: blazeface, blazeface-fast, haar, retinaface"),
    ],
)
def test_bad_values_are_one_clear_error_line(
    tmp_path: Path, checkpoint: Path, capsys, extra: list[str], message: str
) -> None:
    image = _image(tmp_path / "face.jpg")
    args = ["explain", str(image), "--checkpoint", str(checkpoint), "--no-detect", "--out", str(tmp_path)]
    rc = main(args + extra)
    assert rc == 2
    assert message in capsys.readouterr().err


def test_checkpoint_without_preprocessing_is_rejected(tmp_path: Path, checkpoint: Path, capsys) -> None:
    ckpt = torch.load(checkpoint, weights_only=True)
    del ckpt["preprocessing"]
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    rc = main(["explain", str(_image(tmp_path / "f.jpg")), "--checkpoint", str(bad), "--no-detect"])
    assert rc == 2
    assert "lacks preprocessing" in capsys.readouterr().err
    with pytest.raises(ValueError, match="checkpoint has no 'preprocessing'"):
        Explainer(ckpt)


def test_photo_faces_are_cropped_by_the_checkpoint_policy(checkpoint: Path) -> None:
    box = (10.0, 12.0, 30.0, 36.0)
    explainer = Explainer(checkpoint, ExplainSettings(patch=8, stride=8, backend="torch"),
                          detector=lambda image: [box])
    faces = explainer.explain_photo(Image.new("RGB", (64, 48), "white"))
    assert len(faces) == 1 and faces[0].box == box
    assert faces[0].crop.size == (SIZE, SIZE) and faces[0].heatmap.shape == (SIZE, SIZE)
    assert faces[0].target == faces[0].predicted


def test_target_class_is_explained_as_asked(checkpoint: Path) -> None:
    explainer = Explainer(checkpoint, ExplainSettings(target="incorrect", patch=8, stride=8, backend="torch"))
    face = explainer.explain_crop(Image.new("RGB", (40, 40), "grey"))
    assert face.target == "incorrect"


def test_real_photo_through_the_face_detector(tmp_path: Path, checkpoint: Path) -> None:
    from skimage.data import astronaut

    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut()).save(photo)
    out = tmp_path / "out"
    rc = main(["explain", str(photo), "--checkpoint", str(checkpoint), "--patch", "8", "--stride", "8",
               "--backend", "torch", "--out", str(out)])
    assert rc == 0
    index = json.loads((out / "index.json").read_text())
    assert len(index) >= 1
    x0, y0, x1, y1 = index[0]["box"]
    assert 120 < (x0 + x1) / 2 < 300 and 40 < (y0 + y1) / 2 < 200  # her face, not the flag or the suit
    assert (out / "astronaut_face0_occlusion.png").is_file()
