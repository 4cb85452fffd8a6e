"""Checkpoints as plain dicts (no pickled objects), written atomically, loaded with weights_only=True."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskdetect.fileio import atomic_path
from maskdetect.models import create_model, list_models
from maskdetect.preprocess import Preprocessing

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "arch", "state_dict", "preprocessing")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


def make_checkpoint(
    model: nn.Module,
    arch: str,
    preprocessing: Preprocessing,
    *,
    train_args: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    model_kwargs: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Bundle a model's weights with everything needed to use them.

    `model_kwargs` are the architecture options the model was built with (e.g. ``{"width": 8}``
    for small_cnn); `model_from_checkpoint` passes them back to `create_model`.

    Extra keyword arguments (epoch, optimizer state, ...) are stored as they are; they must be
    made of tensors, numbers, strings, lists and dicts so that `weights_only` loading works.
    """
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    return {
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "state_dict": state,
        "preprocessing": preprocessing.to_dict(),
        "train_args": dict(train_args or {}),
        "metrics": dict(metrics or {}),
        "model_kwargs": dict(model_kwargs or {}),
        **extra,
    }


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a checkpoint atomically: a kill mid-write leaves the old file intact."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a checkpoint written by `save_checkpoint`.

    Raises:
        CheckpointError: missing file, not a checkpoint, an unknown format version or architecture,
            or no preprocessing.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file: report them all the same way
        # Never torch's own text: it is many lines and advises weights_only=False (code execution).
        raise CheckpointError(
            f"{path}: not a readable maskdetect checkpoint ({type(err).__name__}); expected a file "
            "written by `maskdetect train` (plain tensors and dicts, loaded with weights_only=True)"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if checkpoint["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {checkpoint['format_version']} is not supported "
            f"(this version reads {FORMAT_VERSION})"
        )
    if checkpoint["arch"] not in list_models():
        raise CheckpointError(
            f"{path}: unknown architecture {checkpoint['arch']!r}; known: {', '.join(list_models())}"
        )
    try:
        Preprocessing.from_dict(checkpoint["preprocessing"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # AttributeError: a part not a dict
        raise CheckpointError(f"{path}: bad preprocessing ({err})") from None
    return checkpoint


def model_from_checkpoint(checkpoint: dict[str, Any], path: str = "<checkpoint>") -> nn.Module:
    """Rebuild the model of a checkpoint in eval mode.

    Raises:
        CheckpointError: the weights do not fit the named architecture.
    """
    classes = checkpoint["preprocessing"]["class_names"]
    options = checkpoint.get("model_kwargs", {})
    try:
        model = create_model(checkpoint["arch"], num_classes=len(classes), pretrained=False, **options)
    except TypeError as err:
        raise CheckpointError(f"{path}: bad options {options} for {checkpoint['arch']!r}: {err}") from None
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: weights do not fit architecture {checkpoint['arch']!r}: {str(err).splitlines()[0]}"
        ) from None
    return model.eval()


def preprocessing_of(checkpoint: dict[str, Any]) -> Preprocessing:
    """The input transform a checkpoint was trained with."""
    return Preprocessing.from_dict(checkpoint["preprocessing"])


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel and torch.compile wrap the real module.
    return getattr(model, "module", getattr(model, "_orig_mod", model))
