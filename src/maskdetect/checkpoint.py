"""Checkpoints as plain dicts (no pickled objects), written atomically, loaded with weights_only=True."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskdetect.fileio import atomic_path
from maskdetect.models import create_model, list_models
from maskdetect.preprocess import Preprocessing, short_repr

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "arch", "state_dict", "preprocessing")
# Architecture options a checkpoint may carry, with their bounds: each sizes or shapes the model
# that is built before its weights are checked (a small_cnn width of 100000 would need terabytes).
MODEL_OPTIONS: dict[str, tuple[type, float, float]] = {
    "width": (int, 1, 1024),
    "dropout": (float, 0.0, 1.0),
    "freeze_backbone": (bool, 0, 1),
}


# The fields a model's description shows (`maskdetect serve`'s /model): plain data only, no tensors.
DESCRIBED_FIELDS = ("train_args", "metrics", "epoch", "model_kwargs", "preprocessing", "arch",
                    "format_version", "model_card", "created", "data", "dataset")
EPOCH_MAX = 1_000_000
# Every value a checkpoint holds, at any depth: what `train` writes (resume.pt too) holds a few thousand.
MAX_VALUES = 1_000_000
MAX_DEPTH = 32


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
        CheckpointError: missing file, not a checkpoint, or a field out of its bounds
            (`check_fields`); one line naming the file, the field, its value and what is allowed.
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
    try:
        check_fields(checkpoint)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    return checkpoint


def check_fields(checkpoint: dict[str, Any]) -> None:
    """Check every field a checkpoint carries against sane bounds, before anything is sized by it.

    The format version, the architecture (known to the registry), the weights (named tensors, every
    float finite), the preprocessing (`Preprocessing.from_dict`: input size, mean/std, crop policy,
    class names), the architecture options (`MODEL_OPTIONS`), the plain-dict fields train_args and
    metrics, the epoch; and every value at any depth (`_check_values`): its type, the nesting, the
    count, and tensors that show no more bytes than they store.

    Raises:
        ValueError: the first bad field, named, with its value and the allowed values.

    >>> from maskdetect.models import create_model
    >>> ckpt = make_checkpoint(create_model("small_cnn", width=4), "small_cnn", Preprocessing(input_size=32),
    ...                        model_kwargs={"width": 4})
    >>> check_fields(ckpt)
    >>> check_fields({**ckpt, "model_kwargs": {"width": 100000}})
    Traceback (most recent call last):
    ...
    ValueError: model_kwargs width = 100000 is out of range; allowed: int from 1 to 1024
    """
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint lacks {', '.join(missing)}")
    version = checkpoint["format_version"]
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise ValueError(
            f"format_version = {short_repr(version)} is not supported; allowed: {FORMAT_VERSION}"
        )
    arch = checkpoint["arch"]
    if not isinstance(arch, str) or arch not in list_models():
        raise ValueError(f"arch = {short_repr(arch)} is unknown; allowed: {', '.join(list_models())}")
    weights = checkpoint["state_dict"]
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise ValueError("state_dict must be a dict of named tensors")
    try:
        Preprocessing.from_dict(checkpoint["preprocessing"])
    except (ValueError, TypeError) as err:  # TypeError: a value of a type from_dict cannot compare
        raise ValueError(f"bad preprocessing: {err}") from None
    options = checkpoint.get("model_kwargs", {})
    if not isinstance(options, dict):
        raise ValueError(f"model_kwargs = {short_repr(options)} must be a dict")
    for name, value in options.items():
        if name not in MODEL_OPTIONS:
            known = ", ".join(MODEL_OPTIONS)
            raise ValueError(f"model_kwargs {short_repr(name)} is unknown; allowed: {known}")
        kind, low, high = MODEL_OPTIONS[name]
        fits = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if not fits or (kind is not bool and isinstance(value, bool)) or not low <= value <= high:
            raise ValueError(f"model_kwargs {name} = {short_repr(value)} is out of range; "
                             f"allowed: {kind.__name__} from {low} to {high}")
    for key in ("train_args", "metrics"):
        if not isinstance(checkpoint.get(key, {}), dict):
            raise ValueError(f"{key} = {short_repr(checkpoint[key])} must be a dict")
    epoch = checkpoint.get("epoch", 0)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= EPOCH_MAX:
        raise ValueError(f"epoch = {short_repr(epoch)} must be an integer from 0 to {EPOCH_MAX}")
    _check_values(checkpoint)
    for name, tensor in weights.items():
        # A model trained to NaN answers "covered" for every face with a score of NaN: refuse it here.
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"state_dict {short_repr(name)} holds values that are not finite (NaN or "
                             "infinity): the weights of a diverged or damaged model")


def _check_values(checkpoint: dict[str, Any]) -> None:
    # Every value, at any depth: plain data or tensors, nested and counted within bounds. The fields a
    # model's description shows (DESCRIBED_FIELDS) hold finite plain data only. Tensors together may
    # not show more bytes than their storages hold: a stride-0 `expand` of one number, or one storage
    # viewed 10,000 times, costs kilobytes in the file and gigabytes once turned into a list.
    count, shown, stored = 0, 0, {}
    stack: list[tuple[str, object, int, bool]] = [
        (key, value, 1, key in DESCRIBED_FIELDS) for key, value in checkpoint.items()]
    while stack:
        where, value, depth, described = stack.pop()
        count += len(value) if isinstance(value, (dict, list, tuple)) else 1  # before any is walked
        if count > MAX_VALUES:
            raise ValueError(f"holds more than {MAX_VALUES:,} values; allowed: weights, optimizer state "
                             "and a few plain fields")
        if depth > MAX_DEPTH:
            raise ValueError(f"{where} is nested more than {MAX_DEPTH} deep")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, (str, int)):
                    raise ValueError(f"{where} has a key {short_repr(key)}; allowed: strings and integers")
                stack.append((f"{where}.{key}", item, depth + 1, described))
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{where}[{i}]", item, depth + 1, described) for i, item in enumerate(value))
        elif isinstance(value, torch.Tensor) and not described:
            storage = value.untyped_storage()
            stored[storage.data_ptr()] = storage.nbytes()
            shown += value.numel() * value.element_size()
        elif isinstance(value, float) and described and not math.isfinite(value):
            raise ValueError(f"{where} = {value} must be a finite number")
        elif not (value is None or isinstance(value, (str, int, float))):
            allowed = "numbers, strings, lists and dicts" + ("" if described else ", tensors")
            raise ValueError(f"{where} holds a {type(value).__name__}; allowed: {allowed}")
    if shown > sum(stored.values()):
        raise ValueError(f"its tensors show {shown:,} bytes but the file stores {sum(stored.values()):,}: "
                         "expanded or repeated views of the same numbers")


def model_from_checkpoint(checkpoint: dict[str, Any], path: str = "<checkpoint>") -> nn.Module:
    """Rebuild the model of a checkpoint in eval mode.

    Raises:
        CheckpointError: the weights do not fit the named architecture.
    """
    try:
        check_fields(checkpoint)  # an in-memory dict has not been through load_checkpoint
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
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
