"""maskdetect: is each face's mask worn correctly, wrongly, or not at all?

The public API, all importable from here:

>>> from maskdetect import Predictor  # doctest: +SKIP
>>> result = Predictor().predict("group.jpg")  # doctest: +SKIP
>>> result.counts(), result.save("boxed.jpg")  # doctest: +SKIP

Names load lazily (PEP 562), so `import maskdetect` stays light: torch, ONNX Runtime and the face
detectors are imported only when a name that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from maskdetect.labels import CLASSES

__version__ = "0.1.0"

# Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    "Predictor": "maskdetect.predict",
    "FaceResult": "maskdetect.results",
    "ImageResult": "maskdetect.results",
    "Explainer": "maskdetect.explain.runner",
    "create_model": "maskdetect.models",
    "list_models": "maskdetect.models",
    "create_detector": "maskdetect.faces.detector",
    "load_checkpoint": "maskdetect.checkpoint",
    "export_onnx": "maskdetect.export",
    "load_classifier": "maskdetect.runtime",
    "open_image": "maskdetect.images",
    # One call per pipeline stage (ARCHITECTURE.md); training is `maskdetect.train.loop.train`.
    "prepare_data": "maskdetect.data.prepare",
    "evaluate_checkpoint": "maskdetect.train.evaluate",
    "explain_folder": "maskdetect.explain.folder",
    "detect_files": "maskdetect.detect.media",
    "run_batch": "maskdetect.detect.ray_batch",
    "BatchOptions": "maskdetect.detect.ray_batch",
    "VideoAnalyzer": "maskdetect.detect.video",
    "evaluate_detection": "maskdetect.evaluation.detection",
    "EvaluateDetectOptions": "maskdetect.evaluation.detection",
}

__all__ = [
    "BatchOptions",
    "CLASSES",
    "EvaluateDetectOptions",
    "Explainer",
    "FaceResult",
    "ImageResult",
    "Predictor",
    "VideoAnalyzer",
    "__version__",
    "create_detector",
    "create_model",
    "detect_files",
    "evaluate_checkpoint",
    "evaluate_detection",
    "explain_folder",
    "export_onnx",
    "list_models",
    "load_checkpoint",
    "load_classifier",
    "open_image",
    "prepare_data",
    "run_batch",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ loads them
    from maskdetect.checkpoint import load_checkpoint
    from maskdetect.data.prepare import prepare_data
    from maskdetect.detect.media import detect_files
    from maskdetect.detect.ray_batch import BatchOptions, run_batch
    from maskdetect.detect.video import VideoAnalyzer
    from maskdetect.evaluation.detection import EvaluateDetectOptions, evaluate_detection
    from maskdetect.explain.folder import explain_folder
    from maskdetect.explain.runner import Explainer
    from maskdetect.export import export_onnx
    from maskdetect.faces.detector import create_detector
    from maskdetect.images import open_image
    from maskdetect.models import create_model, list_models
    from maskdetect.predict import Predictor
    from maskdetect.results import FaceResult, ImageResult
    from maskdetect.runtime import load_classifier
    from maskdetect.train.evaluate import evaluate_checkpoint


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'maskdetect' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
