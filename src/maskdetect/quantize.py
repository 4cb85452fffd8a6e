"""An int8 twin of a classifier's ONNX export: the same graph with 8-bit weights and activations.

On these CPUs (AVX-512 VNNI) ONNX Runtime runs the bundled MobileNetV2 2.1-2.3x faster in int8 than
in float32, one thread, batches of 1-10 faces, which is what the face verifier (about 10 candidates a
photo) and the video path (every face in every frame) spend most of their time on.

Static quantization needs activation ranges: they are measured on calibration crops made the way the
Predictor makes them, the accurate detector's candidate boxes (faces and the non-faces the verifier
must turn down) on the CC0 sample photos that ship in the package, cropped by the checkpoint's own
policy. The int8 file is kept in the per-user cache (`fileio.user_cache_dir`), its name carrying the
export's hash and `QUANTIZE_VERSION`, so it is made once per checkpoint (about 30 s) and never served stale.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from maskdetect.fileio import atomic_path, file_digest, user_cache_dir
from maskdetect.preprocess import Preprocessing

log = logging.getLogger(__name__)

QUANTIZE_VERSION = "3"  # bump when the recipe or the calibration set changes, so cached files are rebuilt
# 2: the calibration crops normalised in one multiply-add (Preprocessing.to_array), from a pinned detector
# 3: 7-bit weights (reduce_range), so CPUs without VNNI give the answers CPUs with it give
SAMPLE_PHOTOS = Path(__file__).resolve().parent / "assets" / "sample" / "andrewmvd" / "images"
CALIBRATION_CROPS = 400
# One crop a calibration step: the quantizer keeps every intermediate tensor of a step, so 16 cost
# 2.6 GB of memory on the bundled model's first int8 run and 1 costs 1.1 GB, for the same file (its
# min-max ranges do not depend on how the crops are grouped) and about the same time.
_BATCH = 1


class QuantizeError(RuntimeError):
    """The int8 twin could not be made (no calibration photos, an unwritable cache, a quantizer error);
    the message names the export and the reason."""


def int8_path(onnx_path: str | os.PathLike) -> Path:
    """Where the int8 twin of a float32 ONNX file is cached: the per-user cache, named by the file's
    hash and the recipe's version (never beside the model).

    >>> import os, tempfile
    >>> os.environ["MASKDETECT_CACHE_DIR"] = tempfile.mkdtemp()
    >>> model = Path(tempfile.mkdtemp()) / "model.onnx"
    >>> _ = model.write_bytes(b"graph")
    >>> int8_path(model).name
    'eef93e1d14482804.int8-q3.onnx'
    """
    return user_cache_dir("onnx") / f"{file_digest(onnx_path)[:16]}.int8-q{QUANTIZE_VERSION}.onnx"


def calibration_crops(
    preprocessing: Preprocessing,
    photos: Iterable[str | os.PathLike] | None = None,
    limit: int = CALIBRATION_CROPS,
) -> np.ndarray:
    """Model inputs (N x 3 x S x S) cropped from the accurate detector's candidates on some photos.

    An unreadable photo is reported and skipped.

    Args:
        preprocessing: the checkpoint's own input transform and crop policy.
        photos: image files; None uses the CC0 sample photos in the package.
        limit: at most this many crops.

    Raises:
        ValueError: no photo gave a candidate.
    """
    files = tuple(sorted(SAMPLE_PHOTOS.iterdir()) if photos is None else [Path(p) for p in photos])
    crops: list[np.ndarray] = []
    for photo, boxes in _candidates(files, limit):
        crops += [preprocessing.face_array(photo, tuple(map(float, box))) for box in boxes]
        if len(crops) >= limit:
            break
    if not crops:
        raise ValueError(f"no face candidate in {len(files)} calibration photos: nothing to calibrate on")
    return np.stack(crops[:limit])


def recipe_detector():  # -> BlazeFaceConfig
    """The detector whose candidates calibrate this recipe: `accurate` as it stood when the recipe was
    made (PIL's resize), written out. A twin is cached under the recipe's name and the int8 face
    verifiers were fitted on its features, so later changes to the detector's defaults must leave
    the calibration alone; a new calibration is a new QUANTIZE_VERSION."""
    from maskdetect.faces.blazeface import MESH_VOC_FRAMING, BlazeFaceConfig, Pass

    passes = (Pass("full", 1.0), Pass("full", 0.5), Pass("short", 0.5, resized=True),
              Pass("back", 1.0, resized=True), Pass("back", 0.5, resized=True))
    return BlazeFaceConfig(passes=passes, threshold=0.37, candidate_threshold=0.3, trust_weighted=True,
                           second_look=True, mesh_box=True, voc_framing=MESH_VOC_FRAMING, max_tile_px=400,
                           area_resize=False)


@functools.lru_cache(maxsize=2)  # the sample photos' candidates serve every checkpoint in a process
def _candidates(files: tuple[Path, ...], limit: int) -> list[tuple[Image.Image, np.ndarray]]:
    from maskdetect.faces.blazeface import BlazeFaceDetector
    from maskdetect.images import ImageError, open_image

    detector = BlazeFaceDetector(recipe_detector())
    found, count = [], 0
    for file in files:
        try:
            photo = open_image(file)
        except ImageError as error:
            log.warning("calibration photo skipped: %s", error)
            continue
        boxes = detector.candidates(photo).boxes
        found.append((photo, boxes))
        count += len(boxes)
        if count >= limit:
            break
    return found


def quantize_onnx(onnx_path: str | os.PathLike, output: str | os.PathLike, crops: np.ndarray) -> Path:
    """Write the int8 (QDQ, per-channel weights) twin of a float32 ONNX classifier, atomically.

    The float32 file's metadata (the preprocessing) is carried over, so the twin runs alone.

    The weights use 7 of their 8 bits (`reduce_range`). Without VNNI (AVX2, SSE4.1 CPUs), ONNX
    Runtime multiplies uint8 activations by int8 weights with VPMADDUBSW, which adds two products in
    int16 and saturates: 255 x 127 x 2 overflows, 255 x 63 x 2 cannot. With 8-bit weights those CPUs
    labelled 1 crop in 13 otherwise than float32 did, against 1 in 21 on VNNI CPUs; with 7 bits
    both kinds compute the same integers (tests/test_quantize_cpus.py runs an AVX2-only CPU under
    qemu to check it), at the same speed.

    Args:
        onnx_path: a float32 export (`maskdetect.export`).
        output: the file to write.
        crops: calibration inputs (N x 3 x S x S float32), as `calibration_crops` makes them.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = onnx.load(str(onnx_path))
    input_name = source.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = iter(
                crops[start : start + _BATCH] for start in range(0, len(crops), _BATCH))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: np.ascontiguousarray(batch, np.float32)}

    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)  # its INFO lines are noise here
    output = Path(output)
    with atomic_path(output) as tmp:
        prepared = tmp.with_name(tmp.name + ".prep.onnx")
        quantized = tmp.with_name(tmp.name + ".q.onnx")
        try:
            quant_pre_process(str(onnx_path), str(prepared))
            quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            reduce_range=True)
            model = onnx.load(str(quantized))
            del model.metadata_props[:]
            model.metadata_props.extend(source.metadata_props)
            onnx.save(model, str(tmp))
        finally:
            prepared.unlink(missing_ok=True)
            quantized.unlink(missing_ok=True)
    return output


def ensure_int8(onnx_path: str | os.PathLike, preprocessing: Preprocessing) -> Path:
    """The cached int8 twin of a float32 ONNX export, calibrating and quantizing it first if needed.

    Raises:
        QuantizeError: it could not be made; nothing half-written is left.
    """
    path = int8_path(onnx_path)
    if not path.is_file():
        log.info("quantizing %s to int8 at %s (once; cached)", onnx_path, path)
        try:
            quantize_onnx(onnx_path, path, calibration_crops(preprocessing))
        except Exception as error:  # the quantizer raises many kinds; each is one reason here
            raise QuantizeError(f"{onnx_path}: could not make its int8 twin ({type(error).__name__}: "
                                f"{error})") from error
    return path
