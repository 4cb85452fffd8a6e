"""Grad-CAM on a classifier's last convolutional block.

The activations of the target block are caught by a forward hook that lives only inside a
`GradCAM` context (``with GradCAM(model) as cam: ...``); leaving the context removes it, so a model
never keeps hooks (or the tensors they hold) after an explanation.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


def find_target_layer(model: nn.Module) -> nn.Module:
    """The last convolutional block: ``layer4`` for ResNets, else the last top-level child with a Conv2d.

    For torchvision's MobileNets that child is ``features`` (whose output is ``features[-1]``'s);
    for the registry's ``small_cnn`` it is the fourth block. A model may name its own (``cam_target``,
    as the registry's ``efficientnet_lite0`` does: its head activation).

    >>> from maskdetect.models import create_model
    >>> type(find_target_layer(create_model("resnet18"))).__name__
    'Sequential'
    """
    if isinstance(getattr(model, "cam_target", None), nn.Module):
        return model.cam_target
    if isinstance(getattr(model, "layer4", None), nn.Module):
        return model.layer4
    children = list(model.children())
    for child in reversed(children):
        if isinstance(child, nn.Conv2d) or any(isinstance(m, nn.Conv2d) for m in child.modules()):
            return child
    raise ValueError(f"{type(model).__name__} has no Conv2d layer; Grad-CAM needs a convolutional model")


class GradCAM:
    """Grad-CAM maps for one model; use as a context manager so its hook is always released.

    >>> from maskdetect.models import create_model
    >>> model = create_model("small_cnn", width=8).eval()
    >>> with GradCAM(model) as cam:
    ...     heat = cam(torch.zeros(3, 32, 32), target=0)
    >>> heat.shape
    (32, 32)
    """

    def __init__(self, model: nn.Module, layer: nn.Module | None = None) -> None:
        self.model = model.eval()
        self.layer = layer if layer is not None else find_target_layer(model)
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._activation: torch.Tensor | None = None

    def __enter__(self) -> GradCAM:
        self._handle = self.layer.register_forward_hook(self._keep_activation)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the hook and drop the kept activation."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._activation = None

    def _keep_activation(self, module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        self._activation = output

    def __call__(self, inputs: torch.Tensor, target: int | None = None) -> np.ndarray:
        """The Grad-CAM map of one normalised 3 x H x W crop, H x W float32 >= 0, upsampled bilinearly.

        Args:
            inputs: the normalised crop.
            target: the class index; default the predicted class.

        Raises:
            RuntimeError: called outside the ``with`` block.
            ValueError: target out of range.
        """
        if self._handle is None:
            raise RuntimeError("GradCAM must be used inside 'with GradCAM(model) as cam:'")
        if inputs.ndim != 3:
            raise ValueError(f"expected a 3 x H x W input, got shape {tuple(inputs.shape)}")
        height, width = inputs.shape[1:]
        try:
            with torch.enable_grad():
                batch = inputs[None].detach().clone().requires_grad_(True)
                logits = self.model(batch)
                classes = logits.shape[1]
                target = int(logits.argmax(dim=1).item()) if target is None else target
                if not 0 <= target < classes:
                    raise ValueError(
                        f"target class index {target} is out of range; allowed: 0 to {classes - 1}"
                    )
                activation = self._activation
                if activation is None:
                    raise RuntimeError(f"the hooked layer {type(self.layer).__name__} did not run")
                (grads,) = torch.autograd.grad(logits[0, target], activation)
            weights = grads.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
            cam = F.interpolate(cam, size=(height, width), mode="bilinear", align_corners=False)
            return cam[0, 0].numpy().astype(np.float32)
        finally:
            self._activation = None


def gradcam_map(model: nn.Module, inputs: torch.Tensor, target: int | None = None) -> np.ndarray:
    """One Grad-CAM map; the hook is added and removed around the call.

    >>> from maskdetect.models import create_model
    >>> gradcam_map(create_model("small_cnn", width=8).eval(), torch.zeros(3, 32, 32), 1).shape
    (32, 32)
    """
    with GradCAM(model) as cam:
        return cam(inputs, target)
