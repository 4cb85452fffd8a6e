"""What the service says about its model: read once from the predictor and the checkpoint it loaded."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from maskdetect.labels import CLASS_COLOURS, CLASSES

log = logging.getLogger(__name__)

# Checkpoint keys worth showing a client; weights and optimiser state never leave the server.
_CARD_KEYS = ("arch", "metrics", "model_card", "train_args", "created", "data", "dataset", "epoch")


def describe_model(predictor: Any) -> dict[str, Any]:
    """Name, classes, colours, input size, architecture and model card of a predictor, as JSON data.

    Reads the checkpoint file named by ``predictor.checkpoint_path`` (if any) for its architecture
    and metrics; call it once and keep the answer. Nothing in it names a place on a machine: the
    checkpoint is given by its file name, training arguments that name paths are left out, any other
    path (in a value or a key, whole or within a sentence, file URLs too) is cut to its last part, and
    URLs lose their user:password@.

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
        card["train_args"] = {k: v for k, v in card["train_args"].items() if not _names_path(_plain({k: v}))}
    info.update({key: _plain(card[key]) for key in _CARD_KEYS if key in card})
    name = getattr(predictor, "name", None) or card.get("arch")
    if name:
        extras = [str(v) for v in (Path(path).name if path else None, backend, detector) if v]
        info["name"] = f"{name} ({', '.join(extras)})" if extras else str(name)
    return _without_paths(info)  # all of it: the card, and the name, backend and detector too


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


# What names a place on a machine, wherever it sits in a string: a file URL (file:///x, file:/x,
# file://host/x), an absolute POSIX path, a home path (~/x, ~bob/x), a Windows drive path (C:\\x,
# C:/x) or a UNC path (\\\\server\\x); and a URL, for the credentials it may carry (user:password@).
_PLACES = re.compile(
    r"""(?P<file>\bfile:[^\s"'<>]*)"""
    r"""|(?P<url>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>]*)"""
    r"""|(?P<path>(?<![\w.~/\\-])(?:/|~[\w.\-]*/|[A-Za-z]:[\\/]|\\\\)[^\s"'<>|]*)"""
)


def _last_part(path: str) -> str:
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _redact_place(match: re.Match[str]) -> str:
    if match.group("url") is None:  # a file URL or a path: its last part only
        return _last_part(match.group(0).removeprefix("file:"))
    url = urlsplit(match.group("url"))
    return urlunsplit(url._replace(netloc=url.netloc.rpartition("@")[2]))  # without user:password@


def redact(text: str) -> str:
    """`text` with every place on a machine cut to its last part and the credentials of URLs dropped.

    >>> redact("trained on /home/ana/data/faces from https://ana:s3cret@example.org/x.zip")
    'trained on faces from https://example.org/x.zip'
    >>> redact("file:///C:/Users/ana/best.pt"), redact("C:\\\\Users\\\\ana\\\\runs"), redact("km/s 1/2")
    ('best.pt', 'runs', 'km/s 1/2')
    """
    return _PLACES.sub(_redact_place, text)


def _looks_like_path(value: Any) -> bool:
    # A string that is a whole path, relative ones too; a URL is not one, unless it is a file URL.
    if not isinstance(value, str):
        return False
    if "://" in value:
        return value.startswith("file:")
    return "/" in value or "\\" in value or value.startswith("~")


def _names_path(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_names_path(k) or _names_path(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_names_path(v) for v in value)
    return _looks_like_path(value)


def _without_paths(value: Any) -> Any:
    # Keys too: a checkpoint may map its data folders to their counts.
    if isinstance(value, dict):
        return {redact(k): _without_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_paths(v) for v in value]
    if isinstance(value, str):
        whole_path = _looks_like_path(value) and not any(c.isspace() for c in value)
        return _last_part(value) if whole_path else redact(value)
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
