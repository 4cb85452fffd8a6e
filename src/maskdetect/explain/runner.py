"""Explain a checkpoint's decision on face crops and photos: the library core behind `maskdetect explain`.

An `Explainer` loads a checkpoint once (model, preprocessing, class names) and returns a
`FaceExplanation` per face: the heat map in the crop's pixel grid (input_size x input_size), the
crop itself, and the class probabilities. Photos go through the project's face detector and the
checkpoint's crop policy, so the crop explained is the crop the Predictor classifies.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from maskdetect.explain.gradcam import GradCAM
from maskdetect.explain.occlusion import (
    BORDERS,
    FILLS,
    check_window,
    coarse_to_fine_map,
    fill_pixels,
    normalise_pixels,
    occlusion_map,
)
from maskdetect.explain.options import EXPLAIN_BACKENDS, METHODS, MODES
from maskdetect.faces.crop import Box, crop_face
from maskdetect.runtime import Classifier, load_classifier

log = logging.getLogger(__name__)

BoxDetector = Callable[[Image.Image], list[Box]]
# The runtimes an explainer runs occlusion on: "auto" is ONNX Runtime, else torch if that fails.


@dataclass(frozen=True)
class ExplainSettings:
    """How to explain: the method and its parameters.

    Attributes:
        method: ``occlusion`` or ``gradcam``.
        target: ``predicted`` or a class name of the checkpoint.
        patch, stride: occlusion window side and step, in crop pixels.
        fill: occlusion fill in pixel space: ``grey`` (128), ``mean`` or ``blur``.
        border: ``clip`` (captum's rule) or ``shift`` (whole windows, one flush with the border).
        batch_size: occluded crops per forward pass.
        backend: ``auto``, ``onnx`` or ``torch`` (occlusion only; Grad-CAM needs torch's gradients).
        mode: ``exact`` or ``coarse`` (coarse-to-fine: exact windows only where a coarse map is high).
    """

    method: str = "occlusion"
    target: str = "predicted"
    patch: int = 16
    stride: int = 8
    fill: str = "grey"
    border: str = "clip"
    batch_size: int = 64
    backend: str = "auto"
    mode: str = "exact"

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("method", self.method, METHODS), ("fill", self.fill, FILLS), ("border", self.border, BORDERS),
            ("backend", self.backend, EXPLAIN_BACKENDS), ("mode", self.mode, MODES),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        if self.batch_size < 1:
            raise ValueError(f"batch size {self.batch_size} is not allowed; allowed: 1 or more")


@dataclass
class FaceExplanation:
    """One face's explanation.

    Attributes:
        crop: the face crop the model saw, input_size x input_size RGB.
        heatmap: H x W float32 in the crop's grid (occlusion: drop in the target's probability;
            Grad-CAM: the class activation map, >= 0).
        probabilities: class name -> probability on the untouched crop.
        target: the class explained; predicted: the most probable class.
        method: ``occlusion`` or ``gradcam``.
        box: the face box in the photo (None for a crop given as is).
        probability_map: occlusion only: the target's probability with each pixel occluded.
    """

    crop: Image.Image
    heatmap: np.ndarray
    probabilities: dict[str, float]
    target: str
    predicted: str
    method: str
    box: Box | None = None
    probability_map: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description (no arrays)."""
        return {
            "box": None if self.box is None else [round(float(v), 1) for v in self.box],
            "predicted": self.predicted,
            "target": self.target,
            "method": self.method,
            "probabilities": {k: round(v, 5) for k, v in self.probabilities.items()},
            **self.extra,
        }


def resolve_target(target: str, classes: tuple[str, ...]) -> int | None:
    """The class index for a target name (None for ``predicted``).

    >>> resolve_target("incorrect", ("covered", "incorrect", "uncovered"))
    1
    """
    if target == "predicted":
        return None
    if target in classes:
        return classes.index(target)
    raise ValueError(f"unknown target class {target!r}; allowed: predicted, {', '.join(classes)}")


class Explainer:
    """Heat maps for one checkpoint.

    Args:
        checkpoint: a checkpoint file or an already loaded checkpoint dict; None: the bundled model.
        settings: the method and its parameters.
        detector: finds face boxes in a photo (default: the project's BlazeFace detector, built on
            first use).

    Raises:
        FileNotFoundError: no checkpoint given and no bundled model.
        ValueError: a checkpoint without its preprocessing, an unknown target, or a patch that does
            not fit the model's input size.

    >>> from maskdetect.checkpoint import make_checkpoint
    >>> from maskdetect.models import create_model
    >>> from maskdetect.preprocess import Preprocessing
    >>> ckpt = make_checkpoint(create_model("small_cnn"), "small_cnn", Preprocessing(input_size=32))
    >>> explainer = Explainer(ckpt, ExplainSettings(patch=8, stride=8, backend="torch"))
    >>> explainer.explain_crop(Image.new("RGB", (50, 50))).heatmap.shape
    (32, 32)
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | dict | None = None,
        settings: ExplainSettings | None = None,
        detector: BoxDetector | None = None,
    ) -> None:
        self.settings = settings or ExplainSettings()
        # The eager model serves Grad-CAM and checks the checkpoint; loaded once per process.
        self._torch = load_classifier(checkpoint, "torch")
        self._checkpoint = checkpoint
        self.source = self._torch.source
        self.preprocessing = self._torch.preprocessing
        self.classes = self.preprocessing.classes
        self.target_index = resolve_target(self.settings.target, self.classes)
        size = self.preprocessing.input_size
        if self.settings.method == "occlusion":
            check_window(size, size, self.settings.patch, self.settings.stride)
        self.model = self._torch.model
        self._forward: Callable[[np.ndarray], np.ndarray] | None = None
        self._detector = detector

    @property
    def forward(self) -> Callable[[np.ndarray], np.ndarray]:
        """Occlusion's batched forward: class probabilities (ONNX export happens here, once)."""
        if self._forward is None:
            self._forward = self._occlusion_classifier().probabilities
        return self._forward

    def _occlusion_classifier(self) -> Classifier:
        backend = self.settings.backend
        if backend == "torch":
            return self._torch
        try:
            classifier = load_classifier(self._checkpoint, "onnx", threads=torch.get_num_threads())
        except Exception as err:  # export and ONNX Runtime raise many kinds; "auto" means "use torch"
            if backend == "onnx":
                raise RuntimeError(f"ONNX Runtime backend unavailable for {self.source}: {err}") from err
            log.warning("ONNX Runtime backend unavailable (%s); using PyTorch", err)
            return self._torch
        log.info("occlusion backend: %s", classifier.backend)
        return classifier

    def explain_crop(self, face: Image.Image, box: Box | None = None) -> FaceExplanation:
        """Explain one face crop (any size; resized to the model's input like `Preprocessing` does)."""
        size = self.preprocessing.input_size
        crop = face.convert("RGB")
        if crop.size != (size, size):
            crop = crop.resize((size, size), Image.BILINEAR)
        pixels = np.asarray(crop, np.float32)
        inputs = normalise_pixels(pixels, self.preprocessing.mean, self.preprocessing.std)
        if self.settings.method == "occlusion":
            probs = self.forward(inputs[None])[0]
        else:
            probs = self._torch.probabilities(inputs[None])[0]
        predicted = int(np.argmax(probs))
        target = predicted if self.target_index is None else self.target_index
        probability_map = None
        extra: dict[str, Any] = {}
        if self.settings.method == "occlusion":
            s = self.settings
            baseline = normalise_pixels(fill_pixels(pixels, s.fill, blur_radius=s.patch / 2),
                                        self.preprocessing.mean, self.preprocessing.std)
            run = coarse_to_fine_map if s.mode == "coarse" else occlusion_map
            result = run(self.forward, inputs, baseline, target, s.patch, s.stride,
                         border=s.border, batch_size=s.batch_size)
            heatmap, probability_map = result.delta, result.probability
            extra = {"windows": result.windows, "patch": s.patch, "stride": s.stride, "fill": s.fill,
                     "mode": s.mode}
        else:
            with GradCAM(self.model) as cam:
                heatmap = cam(torch.from_numpy(inputs), target)
        return FaceExplanation(
            crop=crop, heatmap=heatmap,
            probabilities={c: float(p) for c, p in zip(self.classes, probs, strict=True)},
            target=self.classes[target], predicted=self.classes[predicted], method=self.settings.method,
            box=box, probability_map=probability_map, extra=extra,
        )

    def explain_photo(self, photo: Image.Image, detect: bool = True) -> list[FaceExplanation]:
        """Explain every detected face of a photo, or the whole image as one crop with ``detect=False``."""
        if not detect:
            return [self.explain_crop(photo)]
        return [self.explain_box(photo, box) for box in self.detect(photo)]

    def explain_box(self, photo: Image.Image, box: Box) -> FaceExplanation:
        """Explain the face at `box` of a photo, cropped by the checkpoint's policy as the Predictor does."""
        size = self.preprocessing.input_size
        return self.explain_crop(crop_face(photo, box, self.preprocessing.crop_policy, size=size), box)

    def detect(self, photo: Image.Image) -> list[Box]:
        """Face boxes from the detector (the project's BlazeFace by default)."""
        if self._detector is None:
            from maskdetect.faces.detector import create_detector

            detector = create_detector("blazeface")
            self._detector = lambda image: [tuple(map(float, b)) for b in detector.detect(image)[0]]
        return list(self._detector(photo))
