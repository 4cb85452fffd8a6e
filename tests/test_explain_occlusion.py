"""Occlusion maps: position and orientation, border coverage, pixel-space fill, captum parity, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from explain_fixtures import RectangleModel
from torch import nn

from maskdetect.checkpoint import make_checkpoint
from maskdetect.explain.occlusion import (
    coarse_to_fine_map,
    fill_pixels,
    normalise_pixels,
    occlusion_map,
    occlusion_windows,
    region_iou,
    top_region,
    window_starts,
)
from maskdetect.models import create_model
from maskdetect.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from maskdetect.runtime import Classifier, load_classifier


def ONES(height: int, width: int) -> np.ndarray:  # noqa: N802 - reads like a constant image
    return np.ones((3, height, width), np.float32)


def rect_mask(shape: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


def test_map_position_and_orientation_match_the_region_the_model_reads() -> None:
    # A non-square image and an off-centre, non-square rectangle: a transposed map cannot match.
    height, width = 12, 20
    rows, cols = slice(2, 5), slice(11, 18)
    forward = Classifier.from_module(RectangleModel(rows, cols)).probabilities
    result = occlusion_map(forward, ONES(height, width), np.zeros(3), 0, patch=1, stride=1)
    assert result.delta.shape == (height, width)
    np.testing.assert_array_equal(result.delta > 1e-6, rect_mask((height, width), rows, cols))
    assert result.base_probability > 0.99


def test_larger_patches_centre_the_map_on_the_region() -> None:
    height, width = 48, 40
    rows, cols = slice(30, 42), slice(4, 12)
    forward = Classifier.from_module(RectangleModel(rows, cols)).probabilities
    result = occlusion_map(forward, ONES(height, width), np.zeros(3), 0, patch=6, stride=2)
    y, x = np.unravel_index(np.nanargmax(result.delta), result.delta.shape)
    assert 30 <= y < 42 and 4 <= x < 12
    assert np.all(result.delta[:20, :] < 1e-6) and np.all(result.delta[:, 20:] < 1e-6)
    # The raw probability map is the complement: lowest where the region is occluded.
    assert result.probability[36, 8] < result.probability[5, 30]


def test_border_windows_are_not_skipped() -> None:
    # (size - patch) is not a multiple of stride: the bottom-right corner needs the last, clipped window.
    height, width = 23, 27
    rows, cols = slice(21, 23), slice(25, 27)
    forward = Classifier.from_module(RectangleModel(rows, cols)).probabilities
    for border in ("clip", "shift"):
        result = occlusion_map(forward, np.ones((3, height, width), np.float32), np.zeros(3), 0,
                               patch=6, stride=4, border=border)
        assert result.counts.min() >= 1, border
        assert result.delta[22, 26] > 0.01, border
    assert window_starts(23, 6, 4) == [0, 4, 8, 12, 16, 20]
    assert window_starts(23, 6, 4, border="shift") == [0, 4, 8, 12, 16, 17]
    assert all(y1 <= height and x1 <= width for _, y1, _, x1 in occlusion_windows(height, width, 6, 4))


def test_fill_is_grey_in_pixel_space_then_normalised() -> None:
    seen: list[np.ndarray] = []

    def forward(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return np.tile([[0.5, 0.25, 0.25]], (len(batch), 1))

    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    inputs = normalise_pixels(pixels, IMAGENET_MEAN, IMAGENET_STD)
    baseline = normalise_pixels(fill_pixels(pixels, "grey"), IMAGENET_MEAN, IMAGENET_STD)
    occlusion_map(forward, inputs, baseline, 0, patch=4, stride=4)
    first_window = seen[1][0]  # seen[0] is the unoccluded crop
    expected = (128 / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(first_window[:, 0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(first_window[:, 6, 6], inputs[:, 6, 6])  # outside the window: untouched
    assert not np.allclose(expected, 0.5)


def test_mean_and_blur_fills() -> None:
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[:, 8:] = 200
    np.testing.assert_allclose(fill_pixels(pixels, "mean")[0, 0], [100, 100, 100])
    blurred = fill_pixels(pixels, "blur", blur_radius=2)
    assert 0 < blurred[8, 7, 0] < 200 and blurred[8, 0, 0] < 5
    with pytest.raises(ValueError, match="unknown fill 'pink'.*grey, mean, blur"):
        fill_pixels(pixels, "pink")


def _conv_net() -> nn.Module:
    # A random conv net without batch norm: occluding a patch moves its probabilities by a few percent.
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 3), ScaleLogits(20.0),
    ).eval()


class ScaleLogits(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


@pytest.mark.parametrize(("size", "patch", "stride", "fill"), [(40, 8, 4, "grey"), (38, 8, 5, "blur")])
def test_equal_to_captum_occlusion(size: int, patch: int, stride: int, fill: str) -> None:
    from captum.attr import Occlusion

    model = _conv_net()
    pixels = np.random.default_rng(1).integers(0, 256, (size, size, 3)).astype(np.uint8)
    inputs = normalise_pixels(pixels, IMAGENET_MEAN, IMAGENET_STD)
    baseline = normalise_pixels(fill_pixels(pixels, fill, blur_radius=3), IMAGENET_MEAN, IMAGENET_STD)
    target = 2
    forward = Classifier.from_module(model).probabilities
    ours = occlusion_map(forward, inputs, baseline, target, patch, stride, batch_size=7)

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(x), dim=1)

    with torch.no_grad():
        theirs = Occlusion(probabilities).attribute(
            torch.from_numpy(inputs)[None],
            sliding_window_shapes=(3, patch, patch),
            strides=(3, stride, stride),
            baselines=torch.from_numpy(baseline)[None], target=target, perturbations_per_eval=64,
        )[0, 0].numpy()
    assert np.abs(ours.delta).max() > 1e-2  # the comparison below is not trivially met
    np.testing.assert_allclose(ours.delta, theirs, atol=1e-5)


def test_batch_size_does_not_change_the_map() -> None:
    forward = Classifier.from_module(_conv_net()).probabilities
    pixels = np.random.default_rng(2).integers(0, 256, (32, 32, 3))
    inputs = normalise_pixels(pixels, IMAGENET_MEAN, IMAGENET_STD)
    maps = [occlusion_map(forward, inputs, np.zeros(3), 1, 8, 4, batch_size=b).delta for b in (1, 5, 64)]
    np.testing.assert_allclose(maps[0], maps[1], atol=1e-6)
    np.testing.assert_allclose(maps[0], maps[2], atol=1e-6)


@pytest.mark.parametrize(("arch", "options"), [("small_cnn", {"width": 8}), ("mobilenet_v2", {})])
def test_onnx_backend_matches_torch(arch: str, options: dict) -> None:
    # An in-memory checkpoint, as the Explainer gets one: exported to a temporary ONNX file.
    torch.manual_seed(0)
    model = create_model(arch, **options).eval()
    ckpt = make_checkpoint(model, arch, Preprocessing(input_size=32), model_kwargs=options)
    batch = np.random.default_rng(3).normal(size=(5, 3, 32, 32)).astype(np.float32)
    onnx_classifier = load_classifier(ckpt, "onnx")
    assert onnx_classifier.backend == "onnx"
    expected = Classifier.from_module(model).probabilities(batch)
    np.testing.assert_allclose(onnx_classifier.probabilities(batch), expected, atol=1e-5)


def test_coarse_to_fine_keeps_the_top_region_and_evaluates_fewer_windows() -> None:
    height = width = 64
    rows, cols = slice(40, 52), slice(10, 30)
    forward = Classifier.from_module(RectangleModel(rows, cols)).probabilities
    inputs, baseline = np.ones((3, height, width), np.float32), np.zeros(3)
    exact = occlusion_map(forward, inputs, baseline, 0, 8, 4)
    fast = coarse_to_fine_map(forward, inputs, baseline, 0, 8, 4)
    assert fast.counts.min() >= 1
    assert fast.windows < exact.windows
    assert region_iou(top_region(fast.delta, 0.1), top_region(exact.delta, 0.1)) >= 0.8
    complete = fast.counts == exact.counts  # every window covering these pixels was evaluated
    assert complete[rows, cols].all() and not complete.all()
    np.testing.assert_allclose(fast.delta[complete], exact.delta[complete], atol=1e-6)


@pytest.mark.parametrize(
    ("patch", "stride", "message"),
    [(40, 4, "patch 40 does not fit the 32x32 crop; allowed: 1 to 32"),
     (8, 0, "stride 0 is not allowed; allowed: 1 to the patch size"),
     (8, 9, "stride 9 is not allowed")],
)
def test_bad_patch_or_stride_is_a_clear_error(patch: int, stride: int, message: str) -> None:
    forward = Classifier.from_module(RectangleModel(slice(0, 2), slice(0, 2))).probabilities
    with pytest.raises(ValueError, match=message):
        occlusion_map(forward, np.ones((3, 32, 32), np.float32), np.zeros(3), 0, patch, stride)


def test_unknown_target_index_and_border_rule() -> None:
    forward = Classifier.from_module(RectangleModel(slice(0, 2), slice(0, 2))).probabilities
    with pytest.raises(ValueError, match="target class index 5 is out of range; allowed: 0 to 2"):
        occlusion_map(forward, np.ones((3, 8, 8), np.float32), np.zeros(3), 5, 2, 2)
    with pytest.raises(ValueError, match="unknown border rule 'wrap'; allowed: clip, shift"):
        window_starts(8, 2, 2, border="wrap")
