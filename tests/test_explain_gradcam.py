"""Grad-CAM: the target layer for each registry model, the map's place, hooks released, steady memory."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest
import torch
from torch import nn

from maskdetect.explain.gradcam import GradCAM, find_target_layer, gradcam_map
from maskdetect.models import create_model


def test_target_layer_for_the_registry_models() -> None:
    mobilenet = create_model("mobilenet_v2")
    assert find_target_layer(mobilenet) is mobilenet.features
    resnet = create_model("resnet18")
    assert find_target_layer(resnet) is resnet.layer4
    small = create_model("small_cnn", width=8)
    assert find_target_layer(small) is small[3]
    v3 = create_model("mobilenet_v3_small")
    assert find_target_layer(v3) is v3.features
    lite = create_model("efficientnet_lite0")
    assert find_target_layer(lite) is lite._head_act
    assert gradcam_map(lite.eval(), torch.randn(3, 64, 64)).shape == (64, 64)
    with pytest.raises(ValueError, match="Linear has no Conv2d layer"):
        find_target_layer(nn.Linear(3, 3))


class ColourNet(nn.Module):
    """Feature channel 0 sees red, channel 1 blue; logit 0 is channel 0's mean, logit 1 channel 1's."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU(), nn.AvgPool2d(4))
        with torch.no_grad():
            self.block[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.block(x).mean(dim=(2, 3))
        return torch.cat([pooled, torch.zeros_like(pooled[:, :1])], dim=1)


def test_map_lights_the_region_of_the_target_class_and_is_not_transposed() -> None:
    image = torch.zeros(3, 32, 48)
    image[0, 24:32, 0:8] = 1.0  # a red square bottom-left
    image[2, 0:8, 40:48] = 1.0  # a blue square top-right
    red = gradcam_map(ColourNet().eval(), image, target=0)
    assert red.shape == (32, 48)
    y, x = np.unravel_index(red.argmax(), red.shape)
    assert y >= 24 and x < 8
    assert red[:12, 24:].max() == 0
    blue = gradcam_map(ColourNet().eval(), image, target=1)
    y, x = np.unravel_index(blue.argmax(), blue.shape)
    assert y < 8 and x >= 40


def test_hooks_are_released_even_on_error() -> None:
    model = create_model("small_cnn", width=8).eval()
    layer = find_target_layer(model)
    with GradCAM(model) as cam:
        assert len(layer._forward_hooks) == 1
        with pytest.raises(ValueError, match="target class index 7 is out of range; allowed: 0 to 2"):
            cam(torch.zeros(3, 32, 32), target=7)
    assert len(layer._forward_hooks) == 0
    with pytest.raises(RuntimeError, match="inside 'with GradCAM"):
        cam(torch.zeros(3, 32, 32))


def test_memory_is_steady_over_100_calls() -> None:
    model = create_model("small_cnn", width=8).eval()
    inputs = torch.randn(3, 32, 32)
    for _ in range(5):  # warm up allocator caches
        gradcam_map(model, inputs)
    gc.collect()
    tensors_before = _live_tensors()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(100):
            gradcam_map(model, inputs)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 50_000, f"Python memory grew by {growth} bytes over 100 Grad-CAM calls"
    assert _live_tensors() <= tensors_before + 2  # no activations or gradients kept per call
    assert all(len(m._forward_hooks) == 0 and len(m._backward_hooks) == 0 for m in model.modules())


def _live_tensors() -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) in (torch.Tensor, nn.Parameter))
