"""Forward functions for the explainers: a model as `batch (N x 3 x H x W float32) -> probabilities`.

Occlusion needs hundreds of forward passes per face; ONNX Runtime runs them several times faster
than eager PyTorch on a CPU, so ``auto`` exports the model to a temporary ONNX file (dynamic batch
axis) when onnxruntime is installed and falls back to PyTorch when it is not or the export fails.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskdetect.predict import softmax

__all__ = ["BACKENDS", "OnnxForward", "TorchForward", "export_onnx", "make_forward", "softmax"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")


class TorchForward:
    """Eager PyTorch: probabilities of a batch, without autograd.

    >>> fwd = TorchForward(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)))
    >>> fwd(np.zeros((2, 3, 2, 2), np.float32)).shape
    (2, 3)
    """

    name = "torch"

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(batch, np.float32)))
        return softmax(logits.double().numpy())


class OnnxForward:
    """The model exported to ONNX (dynamic batch) and run by ONNX Runtime on the CPU.

    Raises:
        RuntimeError: onnxruntime is not installed or the export failed.

    >>> fwd = OnnxForward(nn.Sequential(nn.Conv2d(3, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()), 4)
    >>> fwd(np.zeros((5, 3, 4, 4), np.float32)).shape
    (5, 3)
    """

    name = "onnx"

    def __init__(self, model: nn.Module, input_size: int, threads: int | None = None) -> None:
        if importlib.util.find_spec("onnxruntime") is None:
            raise RuntimeError("onnxruntime is not installed")
        from maskdetect.export import OnnxClassifier  # the one ONNX Runtime session setup

        with tempfile.TemporaryDirectory(prefix="maskdetect-explain-") as tmp:
            path = Path(tmp) / "model.onnx"
            export_onnx(model.eval(), input_size, path)
            self.classifier = OnnxClassifier(path, intra_threads=threads or torch.get_num_threads())

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return softmax(self.classifier(batch).astype(np.float64))


def export_onnx(model: nn.Module, input_size: int, path: Path) -> None:
    """Export a classifier to ONNX with a dynamic batch axis (input ``input``, output ``logits``).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "m.onnx"
    >>> export_onnx(nn.Sequential(nn.Conv2d(3, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()), 4, path)
    >>> path.stat().st_size > 0
    True
    """
    dummy = torch.zeros(1, 3, input_size, input_size)
    kwargs = dict(input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # The TorchScript exporter is quick and handles every registry model; the dynamo
            # exporter is the fallback for a torch that no longer has it.
            torch.onnx.export(model, dummy, str(path), dynamo=False, **kwargs)
        except (TypeError, RuntimeError, AttributeError) as err:
            log.info("TorchScript ONNX export failed (%s); trying the dynamo exporter", err)
            torch.onnx.export(model, dummy, str(path), dynamo=True, **kwargs)


def make_forward(model: nn.Module, input_size: int, backend: str = "auto") -> TorchForward | OnnxForward:
    """A forward function for `model` on the chosen backend.

    Args:
        model: the classifier (eval mode is set).
        input_size: the square input side, for the ONNX export.
        backend: ``auto`` (ONNX Runtime if it works, else PyTorch), ``torch`` or ``onnx``.

    >>> make_forward(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), 2, "torch").name
    'torch'
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if backend == "torch":
        return TorchForward(model)
    try:
        return OnnxForward(model, input_size)
    except Exception as err:  # the exporter raises many kinds of errors; any of them means "use torch"
        if backend == "onnx":
            raise RuntimeError(f"ONNX Runtime backend unavailable: {err}") from err
        log.warning("ONNX Runtime backend unavailable (%s); using PyTorch", err)
        return TorchForward(model)
