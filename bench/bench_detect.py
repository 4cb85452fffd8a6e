"""Frames per second of detect + classify on a 640x480 photo with three faces (JSON on stdout).

The photo is andrewmvd-face-mask's maksssksksss29.jpg (three annotated faces, 61-70 px), resized to
640x480. Each configuration runs the whole Predictor call on an RGB array (as video frames arrive),
after a warm-up; ONNX Runtime and eager torch are measured in the same run, so their ratio holds on a
noisy shared machine.

    .venv/bin/python bench/bench_detect.py [--model PATH] [--frames 30]

Without --model it uses the bundled default model (its verifiers included), or (without one) an
untrained mobilenet_v2 at 160 px: the same compute as a trained one.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "andrewmvd-face-mask" / "images" / "maksssksksss29.jpg"


def _model(path: str | None, folder: Path) -> tuple[Path, str]:
    from maskdetect.bundle import DEFAULT_BUNDLE, MANIFEST

    if path:
        return Path(path), path
    if (DEFAULT_BUNDLE / MANIFEST).is_file():
        return DEFAULT_BUNDLE, "bundled default"
    from maskdetect.checkpoint import make_checkpoint, save_checkpoint
    from maskdetect.models import create_model
    from maskdetect.preprocess import Preprocessing

    target = folder / "mobilenet_v2.pt"
    save_checkpoint(make_checkpoint(create_model("mobilenet_v2"), "mobilenet_v2", Preprocessing(160)), target)
    return target, "untrained mobilenet_v2, 160 px"


def _fps(call, frame: np.ndarray, frames: int) -> tuple[float, int]:
    faces = len(call(frame))  # warm-up (first ONNX/XNNPACK call allocates)
    call(frame)
    start = time.perf_counter()
    for _ in range(frames):
        call(frame)
    return frames / (time.perf_counter() - start), faces


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", "--checkpoint", dest="model",
                        help="a bundle folder, a checkpoint or an ONNX export to time (default: the bundled "
                        "model)")
    parser.add_argument("--frames", type=int, default=30, help="timed frames per configuration")
    parser.add_argument("--threads", type=int, default=1,
                        help="classifier threads for both runtimes (default 1: fastest on the busy 2 cores)")
    args = parser.parse_args()
    if not PHOTO.is_file():
        sys.exit(f"bench photo not found: {PHOTO} (../shared/data must sit beside the project)")
    import torch

    from maskdetect.faces.detector import create_detector
    from maskdetect.predict import Predictor

    torch.set_num_threads(args.threads)
    frame = np.asarray(Image.open(PHOTO).convert("RGB").resize((640, 480), Image.BILINEAR))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        model, described = _model(args.model, Path(tmp))
        for detector in ("blazeface-fast", "blazeface", "haar"):
            face_finder = create_detector(detector)
            fps, faces = _fps(lambda f, d=face_finder: d.detect(Image.fromarray(f))[0], frame, args.frames)
            results[f"detect_only/{detector}"] = {"fps": round(fps, 1), "faces": faces}
            for backend in ("onnx", "torch"):
                options = dict(detector=detector, backend=backend, classifier_threads=args.threads)
                predictor = Predictor(model, **options)
                fps, faces = _fps(predictor, frame, args.frames)
                results[f"{detector}/{backend}"] = {"fps": round(fps, 1), "faces": faces}
            onnx_fps, torch_fps = results[f"{detector}/onnx"]["fps"], results[f"{detector}/torch"]["fps"]
            results[f"{detector}/onnx_over_torch"] = round(onnx_fps / torch_fps, 2)
        # The photo path with its face verifier (the default) against the detector deciding alone.
        plain = Predictor(model, detector="blazeface", classifier_threads=args.threads, verify=False)
        fps, faces = _fps(plain, frame, args.frames)
        results["blazeface/onnx/no_verifier"] = {"fps": round(fps, 1), "faces": faces}
        results["blazeface/onnx/verifier_over_no_verifier"] = round(
            results["blazeface/onnx"]["fps"] / results["blazeface/onnx/no_verifier"]["fps"], 2)
    report = {
        "photo": f"{PHOTO.name} resized to 640x480 (3 annotated faces)",
        "model": described,
        "frames_per_config": args.frames,
        "classifier_threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),  # other jobs on the 2 cores
        "goal_fps": 30,
        "results": results,
    }
    import harness

    baseline = {k: v for k, v in results.items() if k.endswith(("/torch", "/no_verifier"))}
    harness.report("bench_detect", report, baseline, vars(args),
                   ratio={k: v for k, v in results.items() if "_over_" in k})
    return 0


if __name__ == "__main__":
    sys.exit(main())
