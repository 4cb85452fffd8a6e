"""The one way a model runs: `load_classifier(checkpoint, backend)` on ONNX Runtime or eager torch.

A `Classifier` maps a preprocessed batch (N x 3 x S x S float32, normalised as its `preprocessing`
says) to logits (N x C float32); `Classifier.probabilities` is the one softmax over them. The
Predictor classifies faces with it, the Explainer's occlusion forward is its `probabilities`.

Each model file is loaded once per process: the cache is keyed by the file's content hash, the
backend, the device and the thread count, so a changed file is never served from a stale entry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskdetect.bundle import DEFAULT_BUNDLE, open_bundle
from maskdetect.fileio import file_digest
from maskdetect.options import BACKENDS, PRECISIONS

if TYPE_CHECKING:  # preprocess imports torch; the CLI reads BACKENDS without it
    from maskdetect.preprocess import Preprocessing

log = logging.getLogger(__name__)

DEFAULT_MODEL = DEFAULT_BUNDLE  # the bundled model: a folder, opened by `maskdetect.bundle.open_bundle`

# A runtime keeps the memory of the largest batch it ever ran (ONNX Runtime's arena): one crowd photo
# of 99 candidate faces added 450 MB for good. Batches are run in chunks of at most this many.
MAX_BATCH = 16

_CACHE: dict[tuple, Classifier] = {}
_CACHE_LOCK = threading.Lock()


def _chunks(batch: np.ndarray) -> list[np.ndarray]:
    return [batch[start : start + MAX_BATCH] for start in range(0, len(batch), MAX_BATCH)]


class Classifier:
    """A model as a function: preprocessed batch -> logits.

    Args:
        logits: batch (N x 3 x S x S float32) -> logits (N x C).
        backend: the runtime behind it, one of `BACKENDS`.
        preprocessing: the input transform the model expects (None when unknown, e.g. a bare module).
        source: how to name the model in messages.

    >>> from torch import nn
    >>> classifier = Classifier.from_module(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)))
    >>> classifier(np.zeros((2, 3, 2, 2), np.float32)).shape
    (2, 3)
    >>> classifier.probabilities(np.zeros((2, 3, 2, 2), np.float32)).sum(axis=1).round(6).tolist()
    [1.0, 1.0]
    """

    def __init__(
        self,
        logits: Callable[[np.ndarray], np.ndarray],
        backend: str,
        preprocessing: Preprocessing | None = None,
        source: str = "<model>",
        logits_and_features: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self._logits = logits
        self._logits_and_features = logits_and_features
        self.backend = backend
        self.preprocessing = preprocessing
        self.source = source

    @classmethod
    def from_module(cls, model: Any, device: str = "cpu", **kwargs: Any) -> Classifier:
        """Eager torch: an `nn.Module` (set to eval mode) as a Classifier, run without autograd.

        >>> from torch import nn
        >>> Classifier.from_module(nn.Flatten()).backend
        'torch'
        """
        import torch

        from maskdetect.export import with_features

        model = model.eval().to(device)
        both = with_features(model)

        def logits(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(batch).to(device)).float().cpu().numpy()

        def logits_and_features(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with torch.inference_mode():
                out, features = both(torch.from_numpy(batch).to(device))
            return out.float().cpu().numpy(), features.float().cpu().numpy()

        classifier = cls(logits, "torch", logits_and_features=None if both is model else logits_and_features,
                         **kwargs)
        classifier.model = model
        return classifier

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names of the logits' columns (from the preprocessing)."""
        if self.preprocessing is None:
            raise ValueError(f"{self.source}: no preprocessing, so no class names")
        return self.preprocessing.classes

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N x C float32) of a preprocessed batch."""
        parts = _chunks(batch) or [batch]
        return np.concatenate([np.asarray(self._logits(np.ascontiguousarray(part, np.float32)), np.float32)
                               for part in parts])

    @property
    def has_features(self) -> bool:
        """Whether `logits_and_features` works (a model with a linear head, exported since v3)."""
        return self._logits_and_features is not None

    def logits_and_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (N x C) and the features the classifier head reads (N x F), in one forward pass.

        Raises:
            ValueError: the model gives no features (no linear head, or an older ONNX export).
        """
        if self._logits_and_features is None:
            raise ValueError(f"{self.source}: this model gives no features (no linear head, or an old "
                             "export)")
        parts = [self._logits_and_features(np.ascontiguousarray(part, np.float32))
                 for part in _chunks(batch) or [batch]]
        return (np.concatenate([np.asarray(lg, np.float32) for lg, _ in parts]),
                np.concatenate([np.asarray(ft, np.float32) for _, ft in parts]))

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (N x C float64): the softmax of the logits, in double precision so
        that small differences (occlusion's probability drops) survive."""
        return softmax(self(batch).astype(np.float64))


def default_precision(backend: str) -> str:
    """The classifier's arithmetic when none is asked for: int8 on ONNX Runtime, fp32 on torch.

    >>> default_precision("onnx"), default_precision("torch")
    ('int8', 'fp32')
    """
    return "int8" if backend == "onnx" else "fp32"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits.

    >>> softmax(np.array([[0.0, 0.0]])).tolist()
    [[0.5, 0.5]]
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def resolve_checkpoint(checkpoint: str | os.PathLike | None = None) -> Path:
    """The classifier file of a model: a checkpoint or ONNX file as given, a bundle's classifier, or
    the bundled default model's.

    Raises:
        FileNotFoundError: a path that does not exist; a bundle with a missing part.
        maskdetect.bundle.BundleError: a bundle whose manifest cannot be used.

    >>> resolve_checkpoint().name
    'classifier.pt'
    """
    return open_bundle(checkpoint).classifier


def load_classifier(
    checkpoint: str | os.PathLike | dict[str, Any] | None = None,
    backend: str = "onnx",
    *,
    device: str = "cpu",
    threads: int | None = None,
    precision: str = "fp32",
) -> Classifier:
    """Load a model once per process and return it as a `Classifier` (batch -> logits).

    Args:
        checkpoint: a checkpoint file (`maskdetect train`), an ONNX file written by
            `maskdetect export`, a loaded checkpoint dict (not cached), or None for the bundled model.
        backend: "onnx" (ONNX Runtime on the CPU; a checkpoint is exported once and cached beside
            it) or "torch" (eager, on `device`).
        device: torch device for backend="torch".
        threads: ONNX Runtime intra-op threads (None: its default, one per core).
        precision: "fp32", or "int8" (ONNX Runtime only): the export's int8 twin, made once and
            cached beside it (`maskdetect.quantize`), about 2.3x faster on CPUs with VNNI.

    Raises:
        FileNotFoundError: a missing file, or no checkpoint and no bundled model.
        ValueError: an unknown backend or precision, or int8 with backend="torch"; a file that is
            neither a checkpoint nor a maskdetect ONNX export (`CheckpointError`); an ONNX export
            with backend="torch".

    >>> classifier = load_classifier(backend="onnx")
    >>> classifier.classes
    ('covered', 'incorrect', 'uncovered')
    >>> load_classifier(backend="onnx") is classifier  # loaded once
    True
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "int8" and backend != "onnx":
        raise ValueError(f"int8 runs on backend 'onnx' only, not {backend!r}")
    if isinstance(checkpoint, dict):
        return _from_checkpoint(_checked_dict(checkpoint), None, backend, device, threads, precision)
    path = resolve_checkpoint(checkpoint)
    key = (file_digest(path), backend, device, threads, precision)
    with _CACHE_LOCK:  # one load per key even when threads race for it
        if key not in _CACHE:
            _CACHE[key] = _from_file(path, backend, device, threads, precision)
        return _CACHE[key]


def _from_file(path: Path, backend: str, device: str, threads: int | None, precision: str) -> Classifier:
    from maskdetect.checkpoint import CheckpointError, load_checkpoint
    from maskdetect.export import onnx_preprocessing

    if _is_onnx(path):
        preprocessing = onnx_preprocessing(path)
        if backend != "onnx":
            raise ValueError(f"{path}: an ONNX export runs only on backend 'onnx', not {backend!r}")
        runnable = _at_precision(path, preprocessing, precision)
        return _onnx_classifier(runnable, threads, preprocessing, str(path))
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError:
        if zipfile.is_zipfile(path):  # a torch file: load_checkpoint's message names its problem
            raise
        raise CheckpointError(
            f"{path}: neither a maskdetect checkpoint nor an ONNX export; expected a .pt written by "
            "`maskdetect train` or an .onnx written by `maskdetect export`"
        ) from None
    return _from_checkpoint(checkpoint, path, backend, device, threads, precision)


def _at_precision(onnx_path: Path, preprocessing: Preprocessing, precision: str) -> Path:
    if precision == "fp32":
        return onnx_path
    from maskdetect.quantize import ensure_int8

    return ensure_int8(onnx_path, preprocessing)


def _from_checkpoint(
    checkpoint: dict[str, Any], path: Path | None, backend: str, device: str, threads: int | None,
    precision: str = "fp32",
) -> Classifier:
    from maskdetect.checkpoint import model_from_checkpoint, preprocessing_of
    from maskdetect.export import ensure_onnx, export_onnx

    source = "<checkpoint>" if path is None else str(path)
    preprocessing = preprocessing_of(checkpoint)
    if backend == "torch":
        model = model_from_checkpoint(checkpoint, source)
        return Classifier.from_module(model, device, preprocessing=preprocessing, source=source)
    if path is not None:
        exported = ensure_onnx(checkpoint, path)
        return _onnx_classifier(_at_precision(exported, preprocessing, precision), threads, preprocessing,
                                source)
    # An in-memory checkpoint: export to a temporary file; the session keeps the graph in memory.
    with tempfile.TemporaryDirectory(prefix="maskdetect-onnx-") as tmp:
        exported = export_onnx(checkpoint, Path(tmp) / "model.onnx", source=source)
        return _onnx_classifier(_at_precision(exported, preprocessing, precision), threads, preprocessing,
                                source)


def _checked_dict(checkpoint: dict[str, Any]) -> dict[str, Any]:
    from maskdetect.checkpoint import CheckpointError

    if "preprocessing" not in checkpoint:
        raise CheckpointError(
            "checkpoint has no 'preprocessing' (input size, mean/std, crop policy, class names); "
            "allowed: a checkpoint written by maskdetect's make_checkpoint/save_checkpoint"
        )
    for key in ("arch", "state_dict"):
        if key not in checkpoint:
            raise CheckpointError(f"checkpoint has no {key!r}; it is not a maskdetect checkpoint")
    return checkpoint


def _onnx_classifier(
    path: Path, threads: int | None, preprocessing: Preprocessing, source: str
) -> Classifier:
    run, outputs = _onnx_session(path, threads)
    both = None
    if "features" in outputs:

        def both(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            logits, features = run(batch, ["logits", "features"])
            return logits, features

    return Classifier(lambda batch: run(batch, ["logits"])[0], "onnx", preprocessing, source, both)


def _onnx_session(
    path: Path, threads: int | None
) -> tuple[Callable[[np.ndarray, list[str]], list], list[str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]

    def run(batch: np.ndarray, names: list[str]) -> list:  # ONNX Runtime sessions are thread-safe
        return session.run(names if "logits" in outputs else None, {input_name: batch})

    return run, outputs


def _is_onnx(path: Path) -> bool:
    # torch.save writes a zip archive; anything else is ONNX if it says so or parses as a graph.
    if path.suffix.lower() == ".onnx":
        return True
    if zipfile.is_zipfile(path):
        return False
    import onnx

    with contextlib.suppress(Exception):  # protobuf raises several kinds for bytes that are not ONNX
        return len(onnx.load(str(path), load_external_data=False).graph.node) > 0
    return False
