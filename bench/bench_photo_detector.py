"""The photo detector against its previous configuration, side by side in one run (JSON on stdout).

The previous `accurate` configuration (seven tiled passes, second looks on every candidate, no
verifier: as issue 17 found it) is kept here as the baseline. Each photo is run by both, in turn, so
a busy machine slows both alike; the figures are milliseconds a photo on one thread:

- detector alone (`detect`): the old passes against the new ones;
- the whole `Predictor` call (find, classify): beside the BlazeFace photo path (its passes, two-stage
  verifier, int8) the other photo detectors with their own verifiers (`--candidates`, RetinaFace at a
  960 and 640 px long side by default: `speedup_vs_blazeface_photo_path`); the old detector deciding
  alone with the float32 classifier against BlazeFace with its two-stage face verifier and the int8
  classifier; BlazeFace with the float32 classifier, and with the photo shrunk by PIL's
  bilinear instead of OpenCV's area average (as before 2026-12-06, evening), beside them show each
  part's share; the video detector (`blazeface-fast`) with its own verifier is the fast reference.

    .venv/bin/python bench/bench_photo_detector.py [--photos 40] [--set ../shared/data/ilc2021-dev]
    .venv/bin/python bench/bench_photo_detector.py --per-pass [--set ...]   # where the detector's time goes

`--per-pass` times instead each pass of today's configuration on its own (model, tile, grown or not),
summed over the photos' tiles, in milliseconds a photo: what to look at before dropping a pass.

Without --set it times andrewmvd-face-mask photos (up to 600 px) and the 640x480 photo of
bench_detect.py; with --set, the first photos of that VOC set (ilc2021-dev: up to 1,280 px).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BENCH_PHOTO = DATA / "andrewmvd-face-mask" / "images" / "maksssksksss29.jpg"


def previous_accurate():  # -> BlazeFaceConfig
    """`accurate` as issue 17 found it: seven tiled passes, quarter tiles included."""
    from maskdetect.faces.blazeface import MESH_VOC_FRAMING, BlazeFaceConfig, Pass

    passes = (Pass("full", 1.0), Pass("short", 1.0), Pass("full", 0.5), Pass("short", 0.5),
              Pass("full", 0.25), Pass("back", 1.0), Pass("back", 0.5))
    return BlazeFaceConfig(passes=passes, threshold=0.37, trust_weighted=True, second_look=True,
                           mesh_box=True, voc_framing=MESH_VOC_FRAMING, max_tile_px=400)


def _photos(voc_set: Path | None, count: int) -> list[Image.Image]:
    from maskdetect.images import find_images, open_image

    if voc_set is None:
        frame = Image.open(BENCH_PHOTO).convert("RGB").resize((640, 480), Image.BILINEAR)
        paths = find_images(DATA / "andrewmvd-face-mask" / "images")[: max(0, count - 1)]
        return [frame, *(open_image(p) for p in paths)]
    folder = voc_set / "JPEGImages" if (voc_set / "JPEGImages").is_dir() else voc_set / "images"
    return [open_image(p) for p in find_images(folder)[:count]]


def _time(call, photo: Image.Image) -> tuple[float, int]:
    start = time.perf_counter()
    found = call(photo)
    return (time.perf_counter() - start) * 1000, len(found)


def per_pass(photos: list[Image.Image]) -> dict:
    """Milliseconds a photo spent in each pass of the accurate configuration (all its tiles)."""
    from maskdetect.faces.blazeface import BlazeFaceDetector, pass_candidates

    detector = BlazeFaceDetector("accurate")
    models = detector.models()
    spent: dict[str, float] = {}
    for photo in photos:
        pixels = np.asarray(photo.convert("RGB"))
        for p, side in detector.tilings(max(pixels.shape[:2])):
            name = f"{p.model} tile {p.tile:.2f}{' grown' if p.resized else ''}"
            start = time.perf_counter()
            list(pass_candidates(pixels, p, side, models[p.model], 0.3, detector.config.area_resize))
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
    ms = {name: round(1000 * v / len(photos), 1) for name, v in sorted(spent.items(), key=lambda kv: -kv[1])}
    return {"ms_per_photo_by_pass": ms, "total_ms_per_photo": round(sum(ms.values()), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40, help="photos to time (default 40)")
    parser.add_argument("--set", type=Path, help="a VOC photo set (default: andrewmvd-face-mask)")
    parser.add_argument("--per-pass", action="store_true", help="time each pass of today's detector instead")
    parser.add_argument("--model", help="a model bundle (default: the bundled one)")
    parser.add_argument("--candidates", nargs="*", default=["retinaface-960", "retinaface-640"],
                        help="other photo detectors to time with their verifiers, beside blazeface")
    args = parser.parse_args()
    import harness

    if not BENCH_PHOTO.is_file():
        sys.exit(f"bench photos not found under {DATA} (../shared/data must sit beside the project)")
    from maskdetect.faces.blazeface import BlazeFaceDetector
    from maskdetect.predict import Predictor

    photos = _photos(args.set, args.photos)
    if args.per_pass:
        harness.report("bench_photo_detector/per_pass", {"photos": len(photos), **per_pass(photos)}, None,
                       vars(args))
        return 0
    old_detector, new_detector = BlazeFaceDetector(previous_accurate()), BlazeFaceDetector("accurate")
    old_predictor = Predictor(args.model, verify=False, classifier_threads=1, precision="fp32")
    old_predictor.detector = old_detector
    new_predictor = Predictor(args.model, detector="blazeface", classifier_threads=1)
    new_fp32 = Predictor(args.model, detector="blazeface", classifier_threads=1, precision="fp32")
    new_pil = Predictor(args.model, detector="blazeface", classifier_threads=1)  # PIL's shrinking, as before
    new_pil.detector = BlazeFaceDetector(dataclasses.replace(new_detector.config, area_resize=False))
    calls = {
        "detector/previous": lambda im: old_detector.detect(im)[0],
        "detector/now": lambda im: new_detector.detect(im)[0],
        "predictor/previous_no_verifier": old_predictor,
        "predictor/now_with_verifier": new_predictor,
        "predictor/now_with_verifier_fp32": new_fp32,
        "predictor/now_with_verifier_pil_resize": new_pil,
        "predictor/video_detector_with_its_verifier": new_predictor.with_detector("blazeface-fast"),
        **{f"predictor/{name}_with_its_verifier": new_predictor.with_detector(name)
           for name in args.candidates},
    }
    for call in calls.values():  # warm-up: interpreters, ONNX session, grown inputs
        call(photos[0])
    times = {name: [] for name in calls}
    faces = {name: 0 for name in calls}
    for photo in photos:
        for name, call in calls.items():
            ms, found = _time(call, photo)
            times[name].append(ms)
            faces[name] += found
    results = {name: {"ms_per_photo": round(float(np.mean(t)), 1), "faces": faces[name]}
               for name, t in times.items()}
    baseline = results["predictor/previous_no_verifier"]["ms_per_photo"]
    report = {
        "photos": len(photos),
        "set": str(args.set or "andrewmvd-face-mask (first photo: bench_detect's 640x480 frame)"),
        "threads": 1,
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),  # other jobs on the 2 cores
        "results": results,
        "speedup": {
            "detector": round(results["detector/previous"]["ms_per_photo"]
                              / results["detector/now"]["ms_per_photo"], 2),
            **{name: round(baseline / results[key]["ms_per_photo"], 2) for name, key in (
                ("predictor", "predictor/now_with_verifier"),
                ("predictor_fp32", "predictor/now_with_verifier_fp32"),
                ("predictor_pil_resize", "predictor/now_with_verifier_pil_resize"),
                ("video_detector", "predictor/video_detector_with_its_verifier"))},
        },
        # issue 30: against today's photo path (BlazeFace passes + verifier, int8), same run
        "speedup_vs_blazeface_photo_path": {
            name: round(results["predictor/now_with_verifier"]["ms_per_photo"]
                        / results[f"predictor/{name}_with_its_verifier"]["ms_per_photo"], 2)
            for name in args.candidates},
        "goal_speedup": 3.0,
    }
    harness.report("bench_photo_detector", report, results["predictor/previous_no_verifier"], vars(args),
                   ratio=report["speedup"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
