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
    # One call per pipeline stage (ARCHITECTURE.md), and every options type those calls take.
    "prepare_data": "maskdetect.data.prepare",
    "evaluate_checkpoint": "maskdetect.train.evaluate",
    "explain_folder": "maskdetect.explain.folder",
    "detect_files": "maskdetect.detect.media",
    "run_batch": "maskdetect.detect.ray_batch",
    "BatchOptions": "maskdetect.detect.ray_batch",
    "VideoAnalyzer": "maskdetect.detect.video",
    "evaluate_detection": "maskdetect.evaluation.detection",
    "EvaluateDetectOptions": "maskdetect.evaluation.detection",
    "ModelOptions": "maskdetect.options",
    "ModelBundle": "maskdetect.bundle",
    "open_bundle": "maskdetect.bundle",
    "create_bundle": "maskdetect.bundler.build",
    "fit_bundle_verifier": "maskdetect.bundler.build",
    "FitOptions": "maskdetect.bundler.build",
    "ServeOptions": "maskdetect.serve.server",
    "ExplainSettings": "maskdetect.explain.runner",
    "ExplainOptions": "maskdetect.explain.folder",
    "PrepareOptions": "maskdetect.data.prepare",
    "SourceOptions": "maskdetect.data.prepare",
    "SplitOptions": "maskdetect.data.prepare",
    "VerifyOptions": "maskdetect.data.prepare",
    "TrainConfig": "maskdetect.train.config",
    "train": "maskdetect.train.loop",
    "TrackOptions": "maskdetect.detect.tracks",
}

__all__ = [
    "BatchOptions",
    "CLASSES",
    "EvaluateDetectOptions",
    "ExplainOptions",
    "ExplainSettings",
    "Explainer",
    "FaceResult",
    "FitOptions",
    "ImageResult",
    "ModelBundle",
    "ModelOptions",
    "Predictor",
    "PrepareOptions",
    "ServeOptions",
    "SourceOptions",
    "SplitOptions",
    "TrackOptions",
    "TrainConfig",
    "VerifyOptions",
    "VideoAnalyzer",
    "__version__",
    "create_bundle",
    "create_detector",
    "create_model",
    "detect_files",
    "evaluate_checkpoint",
    "evaluate_detection",
    "explain_folder",
    "export_onnx",
    "fit_bundle_verifier",
    "list_models",
    "load_checkpoint",
    "load_classifier",
    "open_bundle",
    "open_image",
    "prepare_data",
    "run_batch",
    "train",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ loads them
    from maskdetect.bundle import ModelBundle, open_bundle
    from maskdetect.bundler.build import FitOptions, create_bundle, fit_bundle_verifier
    from maskdetect.checkpoint import load_checkpoint
    from maskdetect.data.prepare import (
        PrepareOptions,
        SourceOptions,
        SplitOptions,
        VerifyOptions,
        prepare_data,
    )
    from maskdetect.detect.media import detect_files
    from maskdetect.detect.ray_batch import BatchOptions, run_batch
    from maskdetect.detect.tracks import TrackOptions
    from maskdetect.detect.video import VideoAnalyzer
    from maskdetect.evaluation.detection import EvaluateDetectOptions, evaluate_detection
    from maskdetect.explain.folder import ExplainOptions, explain_folder
    from maskdetect.explain.runner import Explainer, ExplainSettings
    from maskdetect.export import export_onnx
    from maskdetect.faces.detector import create_detector
    from maskdetect.images import open_image
    from maskdetect.models import create_model, list_models
    from maskdetect.options import ModelOptions
    from maskdetect.predict import Predictor
    from maskdetect.results import FaceResult, ImageResult
    from maskdetect.runtime import load_classifier
    from maskdetect.serve.server import ServeOptions
    from maskdetect.train.config import TrainConfig
    from maskdetect.train.evaluate import evaluate_checkpoint
    from maskdetect.train.loop import train


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'maskdetect' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
