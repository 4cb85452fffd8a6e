"""What the service says about its model: read once from the predictor and the checkpoint it loaded."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from maskdetect.labels import CLASS_COLOURS, CLASSES

log = logging.getLogger(__name__)

# Checkpoint keys worth showing a client; weights and optimiser state never leave the server.
_CARD_KEYS = ("arch", "metrics", "model_card", "train_args", "created", "data", "dataset", "epoch")


def describe_model(predictor: Any) -> dict[str, Any]:
    """Name, classes, colours, input size, architecture and model card of a predictor, as JSON data.

    Reads the checkpoint file named by ``predictor.checkpoint_path`` (if any) for its architecture
    and metrics; call it once and keep the answer. Nothing in it names a place on a machine: the
    checkpoint is given by its file name, training arguments that name paths are left out, and any
    other path is cut to its last part.

    >>> info = describe_model(object())
    >>> info["name"], info["classes"]
    ('object', ['covered', 'incorrect', 'uncovered'])
    """
    info: dict[str, Any] = {
        "name": type(predictor).__name__,
        "classes": list(getattr(predictor, "classes", None) or CLASSES),
        "colours": {name: "rgb({},{},{})".format(*rgb) for name, rgb in CLASS_COLOURS.items()},
    }
    preprocessing = getattr(predictor, "preprocessing", None)
    if preprocessing is not None and hasattr(preprocessing, "to_dict"):
        info["preprocessing"] = _plain(preprocessing.to_dict())
        info["input_size"] = info["preprocessing"].get("input_size")
    backend = getattr(predictor, "backend", None)
    detector = getattr(getattr(predictor, "detector", None), "name", None)
    path = getattr(predictor, "checkpoint_path", None)
    for key, value in (("backend", backend), ("detector", detector), ("checkpoint", path)):
        if value is not None:
            info[key] = str(value)
    if path is not None:
        info["checkpoint"] = Path(path).name
    card = dict(_card_of(predictor, path))
    if isinstance(card.get("train_args"), dict):
        card["train_args"] = {k: v for k, v in card["train_args"].items() if not _names_path(_plain(v))}
    info.update({key: _without_paths(_plain(card[key])) for key in _CARD_KEYS if key in card})
    name = getattr(predictor, "name", None) or card.get("arch")
    if name:
        extras = [str(v) for v in (Path(path).name if path else None, backend, detector) if v]
        info["name"] = f"{name} ({', '.join(extras)})" if extras else str(name)
    return info


def _card_of(predictor: Any, path: Any) -> dict[str, Any]:
    for attr in ("model_card", "checkpoint_info"):
        value = getattr(predictor, attr, None)
        if isinstance(value, dict):
            return value
    if path is None:
        return {}
    from maskdetect.checkpoint import CheckpointError, load_checkpoint

    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as err:  # the predictor loaded it a moment ago; say so but keep serving
        log.warning("cannot read the model card: %s", err)
        return {}
    return {key: value for key, value in checkpoint.items() if key in _CARD_KEYS}


def _looks_like_path(value: Any) -> bool:
    # A URL names no place on this machine; a string with a separator or a ~ may.
    if not isinstance(value, str) or "://" in value:
        return False
    return "/" in value or "\\" in value or value.startswith("~")


def _names_path(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_names_path(v) for v in value.values())
    if isinstance(value, list):
        return any(_names_path(v) for v in value)
    return _looks_like_path(value)


def _without_paths(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_paths(v) for v in value]
    if _looks_like_path(value):
        return value.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return value


def _plain(value: Any) -> Any:
    # JSON-safe copy: tensors and paths become numbers/strings, nested containers are walked.
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if k != "state_dict"}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
