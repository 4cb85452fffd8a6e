"""The one core call: `Predictor(model)(image)` -> a `FaceResult` for every face.

The CLI, the REST API and the web page are thin wrappers over this module. A Predictor finds faces
with a face detector, crops each by the checkpoint's own crop policy (`maskdetect.faces.crop`), and
classifies the crops in one batch with the classifier `maskdetect.runtime.load_classifier` gives (ONNX
Runtime by default, exported from the checkpoint once and cached; or eager torch).
"""

from __future__ import annotations

import copy
import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from maskdetect.bundle import open_bundle
from maskdetect.faces.crop import Box
from maskdetect.fileio import file_digest
from maskdetect.images import ImageSource, open_image
from maskdetect.labels import CLASSES
from maskdetect.options import ModelOptions, usable_cores
from maskdetect.results import FaceResult, ImageResult
from maskdetect.runtime import default_precision, load_classifier, softmax
from maskdetect.verify import VerifierError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundFaces:
    """What `Predictor.find` found in an image, for `Predictor.judge` to classify.

    Attributes:
        photo: the image, opened.
        path: its path, when it was given one.
        candidates: the detector's candidates, when a face verifier will decide which are faces.
        detections: else the detector's (boxes N x 4, scores N), its own score having decided.
    """

    photo: Image.Image
    path: str | None
    candidates: Any = None
    detections: tuple[np.ndarray, np.ndarray] | None = None


# (model, detector) pairs already said to run without a verifier: said once a process
_SAID_UNVERIFIED: set[tuple[str, str]] = set()


class Predictor:
    """Find every face in a photo and say whether its mask is worn right, wrong, or not at all.

    Args:
        model: a model bundle folder (`maskdetect.bundle`), a checkpoint (.pt) or an ONNX export
            written by `maskdetect export`; None uses the bundled default model.
        **settings: the other fields of `ModelOptions` (detector, backend, precision,
            candidate_threshold, face_threshold, verify, device, classifier_threads).

    With a face verifier in the bundle for the detector, every candidate box (from the detector's
    `candidate_threshold`) is classified and kept when the verifier's face probability reaches
    `face_threshold`. Without one (a bare checkpoint, `verify=False`, or a detector the bundle has no
    verifier for) the detector's own score decides, against `face_threshold`; this is said once in
    the log. Opening a model writes nothing beside it (derived files go to the per-user cache).

    Raises:
        FileNotFoundError: a missing model file or bundle part.
        ValueError: an unknown detector, backend or precision, a threshold outside (0, 1); a file
            that is neither a bundle, a checkpoint nor a maskdetect ONNX export.

    >>> predictor = Predictor("model.pt", face_threshold=0.5)  # doctest: +SKIP
    >>> [face.label for face in predictor("group.jpg")]  # doctest: +SKIP
    ['covered', 'uncovered']
    """

    def __init__(self, model: str | os.PathLike | None = None, **settings: object):
        self._init(ModelOptions(model=model, **settings))  # type: ignore[arg-type]

    @classmethod
    def from_options(cls, options: ModelOptions) -> Predictor:
        """The Predictor `options` describe (what detect, serve, batch and evaluate-detect build).

        >>> Predictor.from_options(ModelOptions(detector="haar")).detector.name  # doctest: +SKIP
        'haar'
        """
        predictor = cls.__new__(cls)
        predictor._init(options)
        return predictor

    def _init(self, options: ModelOptions) -> None:
        from maskdetect.quantize import QuantizeError

        self.options = options
        self.bundle = open_bundle(options.model)
        self.checkpoint_path = self.bundle.classifier
        self.precision = options.precision or default_precision(options.backend)
        load = functools.partial(load_classifier, self.checkpoint_path, options.backend,
                                 device=options.device,
                                 threads=options.classifier_threads)
        try:
            self.classifier = load(precision=self.precision)
        except QuantizeError as error:
            if options.precision is not None:  # asked for by name: say why it cannot be had
                raise
            # int8 is only the faster default: without it, float32 still answers.
            log.warning("%s; running the float32 classifier", error)
            self.precision = "fp32"
            self.classifier = load(precision="fp32")
        self.preprocessing = self.classifier.preprocessing
        self.classes: tuple[str, ...] = self.preprocessing.classes
        unknown = [c for c in self.classes if c not in CLASSES]
        if unknown:
            raise ValueError(f"{self.checkpoint_path}: checkpoint classes {unknown} are not among {CLASSES}")
        self.backend = options.backend
        self._verify = options.verify and self.classifier.has_features
        self._verifiers: dict[str, object] = {}  # per detector name, loaded once and shared by twins
        self._set_detector(options.detector or self.bundle.photo_detector, options.candidate_threshold,
                           options.face_threshold)

    def _set_detector(self, name: str, candidate_threshold: float | None,
                      face_threshold: float | None) -> None:
        from maskdetect.faces.detector import create_detector
        from maskdetect.verify import load_verifier

        entry = self.bundle.verifier_entry(name, self.precision) if self._verify else None
        if entry is not None and name not in self._verifiers:
            verifier = load_verifier(entry.path)
            if verifier.checkpoint_sha256 != self._classifier_sha256:
                raise VerifierError(f"{entry.path}: fitted for another classifier than "
                                    f"{self.checkpoint_path.name} (its checkpoint_sha256 differs)")
            if verifier.feature_count != self._feature_width:
                raise VerifierError(f"{entry.path}: weighs {verifier.feature_count} classifier features, but "
                                    f"{self.checkpoint_path.name} gives {self._feature_width}")
            self._verifiers[name] = verifier
        self.verifier = self._verifiers.get(name) if entry is not None else None
        if self.verifier is not None:
            # The verifier decides; the detector hands it every candidate from the score it was
            # fitted on (or the one asked for), and its own face threshold plays no part.
            candidates = entry.candidate_threshold if candidate_threshold is None else candidate_threshold
            self.detector = create_detector(name, candidate_threshold=candidates)
        else:
            self.detector = create_detector(name, threshold=face_threshold,
                                            candidate_threshold=candidate_threshold)
        if self.verifier is not None and not getattr(self.detector, "scores_candidates", False):
            self.verifier = None
        if self.verifier is None and self._verify and (self.bundle.label, name) not in _SAID_UNVERIFIED:
            _SAID_UNVERIFIED.add((self.bundle.label, name))
            log.warning("%s has no face verifier for the %s detector: its scores alone decide what is a face "
                        "(fit one with `maskdetect fit-verifier`)", self.bundle.label, name)
        settings = getattr(self.detector, "config", self.detector)  # BlazeFace's config, or the detector
        self.face_threshold = face_threshold
        if self.face_threshold is None:
            self.face_threshold = (self.verifier.threshold if self.verifier is not None
                                   else getattr(settings, "threshold", None))
        self.candidate_threshold = getattr(settings, "candidate_threshold", None)

    # Both are worked out once, when a verifier is first loaded, and shared by the twins
    # `with_detector` makes (copy.copy keeps what a cached_property stored).
    @functools.cached_property
    def _classifier_sha256(self) -> str:
        return file_digest(self.checkpoint_path)

    @functools.cached_property
    def _feature_width(self) -> int:
        size = self.preprocessing.input_size
        return self.classifier.logits_and_features(np.zeros((1, 3, size, size), np.float32))[1].shape[1]

    def _verifies(self) -> bool:
        return self.verifier is not None

    def with_detector(self, detector: str, candidate_threshold: float | None = None,
                      face_threshold: float | None = None) -> Predictor:
        """The same classifier (loaded once, shared) behind another face detector, with the
        thresholds given for it (None: the bundle's for that detector)."""
        twin = copy.copy(self)
        twin._set_detector(detector, candidate_threshold, face_threshold)
        return twin

    def video_twin(self) -> Predictor:
        """The same model behind the video detector the options name (else the bundle's).

        A video's detector runs on the next frame while the classifier works on this one
        (`VideoAnalyzer.process_frames`), so, unless the options set its threads, the twin's classifier
        leaves the detector a core: threads that outnumber the cores wait on each other.
        """
        options = self.options
        twin = self.with_detector(options.video_detector or self.bundle.video_detector,
                                  options.candidate_threshold, options.face_threshold)
        if options.classifier_threads is None and options.backend == "onnx":
            threads = max(1, usable_cores() - 1)
            twin.options = replace(options, classifier_threads=threads)
            twin.classifier = load_classifier(self.checkpoint_path, options.backend, device=options.device,
                                              threads=threads, precision=self.precision)
        return twin

    def __call__(self, image: ImageSource) -> list[FaceResult]:
        """Every face in an image (a path, encoded bytes, a PIL image or an RGB array), best first.

        Raises:
            maskdetect.images.ImageError: the input is not a usable image (names it and why).
        """
        return self.judge(self.find(image)).faces

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
        return self.judge(self.find(image))

    def find(self, image: ImageSource) -> FoundFaces:
        """`predict`'s first half: the detector's pass over an image, nothing classified yet.

        A video runs it on the next frame in another thread while `judge` classifies this one: the
        detector and the classifier each keep a core busy (`VideoAnalyzer.process_frames`).

        Raises:
            maskdetect.images.ImageError: the input is not a usable image (names it and why).
        """
        photo = open_image(image)
        path = str(image) if isinstance(image, (str, os.PathLike)) else None
        if self._verifies():
            return FoundFaces(photo, path, candidates=self.detector.candidates(photo))
        return FoundFaces(photo, path, detections=self.detector.detect(photo))

    def judge(self, found: FoundFaces) -> ImageResult:
        """`predict`'s second half: classify what `find` found, and keep the faces."""
        photo = found.photo
        if found.candidates is not None:
            faces = self._verified_results(photo, found.candidates)
        else:
            boxes, scores = found.detections
            faces = self._results(photo, [tuple(map(float, b)) for b in boxes], [float(s) for s in scores])
        return ImageResult(faces=faces, width=photo.width, height=photo.height, path=found.path, image=photo)

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

    def _verified_results(self, photo: Image.Image, candidates: Any) -> list[FaceResult]:
        # Every candidate is classified; the verifier weighs its scores and the classifier's features,
        # and second boxes on one face go. detection_score is then the face probability.
        from maskdetect.verify import suppress_second_boxes

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

