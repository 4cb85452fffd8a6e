"""The one core call: `Predictor(checkpoint)(image)` -> a `FaceResult` for every face.

The CLI, the REST API and the web page are thin wrappers over this module. A Predictor finds faces
with a face detector, crops each by the checkpoint's own crop policy (`maskdetect.faces.crop`), and
classifies the crops in one batch with the classifier `maskdetect.runtime.load_classifier` gives (ONNX
Runtime by default, exported from the checkpoint once and cached; or eager torch).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from maskdetect.faces.crop import Box
from maskdetect.images import ImageSource, open_image
from maskdetect.labels import CLASSES
from maskdetect.results import FaceResult, ImageResult
from maskdetect.runtime import default_precision, load_classifier, resolve_checkpoint, softmax

log = logging.getLogger(__name__)


class Predictor:
    """Find every face in a photo and say whether its mask is worn right, wrong, or not at all.

    Args:
        checkpoint: a checkpoint file or an ONNX file written by `maskdetect export`; None uses the
            bundled default model.
        detector: a face detector name from `maskdetect.faces.detector.DETECTORS`.
        backend: "onnx" (ONNX Runtime, exported once and cached beside the checkpoint) or "torch".
        detection_threshold: the detector's score threshold; None keeps its tuned default.
        device: torch device for backend="torch" (ONNX Runtime here runs on the CPU).
        classifier_threads: ONNX Runtime intra-op threads (None: its default, one per core). On a
            busy machine 1 is often faster; for torch set `torch.set_num_threads` yourself.
        verify: use the face verifier that sits beside the checkpoint (`maskdetect.verify`), when
            there is one made for it and for the detector (`blazeface`, `blazeface-fast`): every
            candidate box is then classified and kept only if the verifier calls it a face, and
            `detection_threshold` applies to that face probability. False: the detector decides.
        precision: the classifier's arithmetic, "int8" or "fp32" (`maskdetect.runtime.PRECISIONS`);
            None: int8 on ONNX Runtime (about 2.2x faster, the same label for 98.6-98.9% of labelled
            faces; made once per checkpoint and cached, `maskdetect.quantize`), fp32 on torch.

    Raises:
        FileNotFoundError: no checkpoint given and no bundled default model yet, or a missing file.
        ValueError: an unknown detector, backend or a bad threshold; a file that is neither a
            checkpoint nor a maskdetect ONNX export.

    >>> predictor = Predictor("model.pt")  # doctest: +SKIP
    >>> [face.label for face in predictor("group.jpg")]  # doctest: +SKIP
    ['covered', 'uncovered']
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        *,
        detector: str = "blazeface",
        backend: str = "onnx",
        detection_threshold: float | None = None,
        device: str = "cpu",
        classifier_threads: int | None = None,
        verify: bool = True,
        precision: str | None = None,
    ):
        from maskdetect.faces.detector import create_detector
        from maskdetect.quantize import QuantizeError

        created = create_detector(detector, threshold=detection_threshold)  # a bad name fails fast
        self.checkpoint_path = resolve_checkpoint(checkpoint)
        self.precision = precision or default_precision(backend)
        try:
            self.classifier = load_classifier(self.checkpoint_path, backend, device=device,
                                              threads=classifier_threads, precision=self.precision)
        except QuantizeError as error:
            if precision is not None:  # asked for by name: say why it cannot be had
                raise
            # int8 is only the faster default: without it, float32 still answers.
            log.warning("%s; running the float32 classifier", error)
            self.precision = "fp32"
            self.classifier = load_classifier(self.checkpoint_path, backend, device=device,
                                              threads=classifier_threads, precision="fp32")
        self.preprocessing = self.classifier.preprocessing
        self.classes: tuple[str, ...] = self.preprocessing.classes
        unknown = [c for c in self.classes if c not in CLASSES]
        if unknown:
            raise ValueError(f"{self.checkpoint_path}: checkpoint classes {unknown} are not among {CLASSES}")
        self.backend = backend
        self._verify = (verify and self.classifier.has_features
                        and self.checkpoint_path.suffix.lower() != ".onnx")
        self._verifiers: dict[str, object] = {}  # per detector name, loaded once and shared by twins
        self._set_detector(detector, detection_threshold, created)

    def _set_detector(self, name: str, threshold: float | None, created: object = None) -> None:
        from maskdetect.faces.detector import create_detector
        from maskdetect.verify import verifier_for

        self.detector = create_detector(name, threshold=threshold) if created is None else created
        if self._verify and name not in self._verifiers:
            self._verifiers[name] = verifier_for(self.checkpoint_path, self.precision, name)
        self.verifier = self._verifiers.get(name)
        self.face_threshold = threshold
        if self._verifies():
            # The threshold is the verifier's. The detector keeps the candidates the verifier was
            # fitted on (its own candidate threshold): a lower threshold keeps a superset of faces.
            if threshold is None:
                self.face_threshold = self.verifier.threshold
            else:
                self.detector = create_detector(name)

    def _verifies(self) -> bool:
        return self.verifier is not None and getattr(self.detector, "scores_candidates", False)

    def with_detector(self, detector: str, detection_threshold: float | None = None) -> Predictor:
        """The same classifier (loaded once, shared) behind another face detector."""
        twin = copy.copy(self)
        twin._set_detector(detector, detection_threshold)
        return twin

    def __call__(self, image: ImageSource) -> list[FaceResult]:
        """Every face in an image (a path, encoded bytes, a PIL image or an RGB array), best first.

        Raises:
            maskdetect.images.ImageError: the input is not a usable image (names it and why).
        """
        photo = open_image(image)
        if self._verifies():
            return self._verified_results(photo)
        boxes, scores = self.detector.detect(photo)
        return self._results(photo, [tuple(map(float, b)) for b in boxes], [float(s) for s in scores])

    def predict(self, image: ImageSource) -> ImageResult:
        """Every face in an image, with the image's name and size: one `ImageResult`.

        `ImageResult.to_dict()` is the JSON record that `detect`, the REST API and the web page
        write; `.draw()` and `.save()` annotate the photo it was computed on.

        Raises:
            maskdetect.images.ImageError: the input is not a usable image (names it and why).

        >>> result = Predictor().predict("group.jpg")  # doctest: +SKIP
        >>> result.save("boxed.jpg"); result.counts()  # doctest: +SKIP
        {'covered': 2, 'incorrect': 0, 'uncovered': 1}
        """
        photo = open_image(image)
        path = str(image) if isinstance(image, (str, os.PathLike)) else None
        return ImageResult(faces=self(photo), width=photo.width, height=photo.height, path=path, image=photo)

    def classify_faces(self, image: ImageSource, boxes: Sequence[Box]) -> list[FaceResult]:
        """Classify faces at given boxes (x0, y0, x1, y1 pixels), skipping the detector.

        Raises:
            ValueError: a box with no area.
        """
        photo = open_image(image)
        boxes = [tuple(float(v) for v in box) for box in boxes]
        for box in boxes:
            if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
                raise ValueError(f"face box must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box}")
        return self._results(photo, boxes, [1.0] * len(boxes))

    def classify_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (N x C) for a batch of preprocessed face arrays (N x 3 x S x S)."""
        if len(batch) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return self.classifier.probabilities(batch).astype(np.float32)

    def _verified_results(self, photo: Image.Image) -> list[FaceResult]:
        # Every candidate is classified; the verifier weighs its scores and the classifier's features,
        # and second boxes on one face go. detection_score is then the face probability.
        from maskdetect.verify import suppress_second_boxes

        candidates = self.detector.candidates(photo)
        if not len(candidates):
            return []
        boxes = candidates.boxes
        batch = np.stack([self.preprocessing.face_array(photo, tuple(map(float, b))) for b in boxes])
        logits, features = self.classifier.logits_and_features(batch)
        verifier = self.verifier
        face = verifier.decide(boxes, candidates.first, features, photo.size,
                               lambda rows: self.detector.second_looks(candidates, rows))
        keep = np.flatnonzero(face >= self.face_threshold)
        keep = keep[suppress_second_boxes(boxes[keep], face[keep], verifier.suppress_iou,
                                          verifier.suppress_inside)]
        keep = keep[np.argsort(-face[keep], kind="stable")]
        probs = softmax(logits[keep].astype(np.float64))
        return [self._face(tuple(map(float, boxes[i])), float(face[i]), p)
                for i, p in zip(keep, probs, strict=True)]

    def _face(self, box: Box, detection_score: float, p: np.ndarray) -> FaceResult:
        best = int(np.argmax(p))
        return FaceResult(
            box=tuple(box), label=self.classes[best], score=float(p[best]),
            probabilities={c: float(v) for c, v in zip(self.classes, p, strict=True)},
            detection_score=detection_score,
        )

    def _results(self, photo: Image.Image, boxes: list[Box], det_scores: list[float]) -> list[FaceResult]:
        if not boxes:
            return []
        batch = np.stack([self.preprocessing.face_array(photo, box) for box in boxes])
        probs = self.classify_arrays(batch)
        return [self._face(box, det, p) for box, det, p in zip(boxes, det_scores, probs, strict=True)]

