"""Frames per second of the fast video path with tracking on and off, same run (JSON on stdout).

The clip: 100 frames of 640x480 from a virtual camera panning over andrewmvd's maksssksksss29.jpg
(the photo of bench_detect.py; `maskdetect.evaluation.clips.make_clip`), decoded once beforehand. Each
configuration runs `VideoAnalyzer.process` on every frame (detect with blazeface-fast, classify with
ONNX Runtime, and, when on, track and label), then again with the annotated frame drawn and encoded
(H.264 through PyAV, as `detect` writes it). The configurations take turns, `--rounds` times, and
each keeps its best round, so that load from other jobs on the machine falls on both alike;
`tracker_ms_per_frame` is the time spent in `FaceTracker.update` alone (ByteTrack and the labels).
`tracking_on/old_preparation` is the baseline of the frame preparation in the same run: tracking on,
with the detector's inputs resized by PIL (antialiased bilinear) and the classifier's inputs
normalised in three whole-array steps, as before 2026-12-06; `tracking_on/fp32` runs the float32
classifier instead of the int8 default, and `tracking_on/fp32/old_preparation` both without the face
verifier, as the path was before that day. `tracking_on/no_verifier` leaves the video path's face
verifier out (`Predictor(verify=False)`): the detector's boxes from 0.52 alone, fewer crops to classify.
`--detector D` (repeatable) adds `tracking_on/D`: the same path with another detector and its verifier
(e.g. `retinaface-480`, the bundled model's video path since 2026-12-07: BlazeFace's fast path stays the
baseline here), and `on_over_D`. `/overlapped` is the path as `detect` runs a video: the next frame's
faces found in a second thread while this one is classified (`VideoAnalyzer.process_frames`), with the
video twin's classifier threads (`Predictor.video_twin`: a core left to the detector), measured for
blazeface-fast (`tracking_on/overlapped`) and each D, drawn and encoded too.

    .venv/bin/python bench/bench_tracking.py [--frames 100] [--rounds 3] [--detector retinaface-640]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
VOC = ROOT.parent / "shared" / "data" / "andrewmvd-face-mask"
PHOTO = "maksssksksss29"


def _clip(frames: int):
    from maskdetect.data.voc_set import load_voc_faces
    from maskdetect.evaluation.clips import ClipSettings, make_clip

    image, faces = load_voc_faces(VOC / "annotations" / f"{PHOTO}.xml", VOC / "images")
    with Image.open(image) as photo:
        return make_clip(photo, faces, ClipSettings(frames=frames, occlusions=0, drops=0), seed=0)


@contextlib.contextmanager
def _old_preparation():
    """The frame preparation before 2026-12-06: PIL resizes for BlazeFace, three-step normalising."""
    import numpy as np

    from maskdetect.faces import blazeface
    from maskdetect.preprocess import Preprocessing

    resize = blazeface.resize_pixels

    def pil_resize(pixels, width, height, area=True):
        return resize(pixels, width, height, area=False)

    def to_array(self, face):
        if face.size != (self.input_size, self.input_size):
            face = face.resize((self.input_size, self.input_size), Image.BILINEAR)
        array = np.asarray(face.convert("RGB"), dtype=np.float32) / 255.0
        array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))

    saved = blazeface.resize_pixels, Preprocessing.to_array
    blazeface.resize_pixels, Preprocessing.to_array = pil_resize, to_array
    try:
        yield
    finally:
        blazeface.resize_pixels, Preprocessing.to_array = saved


def _run(analyzer, frames, out: Path | None, spent: list[float] | None = None,
         overlapped: bool = False) -> float:
    from maskdetect.detect.video_out import VideoSink

    analyzer.start(25.0)
    if spent is not None and analyzer.tracker is not None:  # time the tracker's own share too
        update = analyzer.tracker.update

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return update(*args, **kwargs)
            finally:
                spent.append(time.perf_counter() - start)

        analyzer.tracker.update = timed
    sink = VideoSink(out, 25.0) if out is not None else None
    start = time.perf_counter()
    steps = analyzer.process_frames(frames) if overlapped else (
        analyzer.process(frame, index) for index, frame in enumerate(frames))
    for result, faces in steps:
        if sink is not None:
            import numpy as np

            sink.write(np.asarray(analyzer.draw(result, faces)))
    if sink is not None:
        sink.publish()
    return len(frames) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--detector", action="append", default=[],
                        help="also time the tracked path with this detector (and its verifier)")
    args = parser.parse_args()
    if not VOC.is_dir():
        sys.exit(f"photo set not found: {VOC} (../shared/data must sit beside the project)")
    from maskdetect.detect.video import VideoAnalyzer
    from maskdetect.predict import Predictor

    clip = _clip(args.frames)
    predictor = Predictor(classifier_threads=1).with_detector("blazeface-fast")
    plain = Predictor(classifier_threads=1, verify=False).with_detector("blazeface-fast")
    fp32 = Predictor(classifier_threads=1, precision="fp32").with_detector("blazeface-fast")
    fp32_plain = Predictor(classifier_threads=1, precision="fp32", verify=False).with_detector(
        "blazeface-fast")
    analyzers = {"tracking_off": VideoAnalyzer(predictor, tracking=False),
                 "tracking_on": VideoAnalyzer(predictor),
                 "tracking_on/no_verifier": VideoAnalyzer(plain),
                 "tracking_on/old_preparation": VideoAnalyzer(predictor),
                 "tracking_on/fp32": VideoAnalyzer(fp32),
                 "tracking_on/fp32/old_preparation": VideoAnalyzer(fp32_plain)}
    # As `detect` runs a video: the next frame's faces found in a second thread, and the video twin's
    # classifier threads (a core left to the detector).
    def as_detect(name):
        return VideoAnalyzer(Predictor(video_detector=name).video_twin())

    analyzers["tracking_on/overlapped"] = as_detect("blazeface-fast")
    for name in args.detector:
        analyzers[f"tracking_on/{name}"] = VideoAnalyzer(Predictor(classifier_threads=1).with_detector(name))
        analyzers[f"tracking_on/{name}/overlapped"] = as_detect(name)
    _run(analyzers["tracking_on"], clip.frames[:5], None)  # warm-up: first ONNX / XNNPACK calls allocate
    best: dict[str, float] = {}
    spent: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, analyzer in analyzers.items():
                old = name.endswith("/old_preparation")
                overlapped = name.endswith("/overlapped")
                for written in (False, True) if name.count("/") == 0 or overlapped else (False,):
                    key = f"{name}{'/draw+h264' if written else ''}"
                    with _old_preparation() if old else contextlib.nullcontext():
                        out = Path(tmp) / f"{name.split('/')[0]}.mp4" if written else None
                        fps = _run(analyzer, clip.frames, out, spent if not (old or overlapped) else None,
                                   overlapped)
                    best[key] = max(best.get(key, 0.0), fps)
    results = {k: round(v, 1) for k, v in best.items()}
    results["on_over_off"] = round(best["tracking_on"] / best["tracking_off"], 3)
    results["on_over_old_preparation"] = round(best["tracking_on"] / best["tracking_on/old_preparation"], 3)
    results["on_over_fp32"] = round(best["tracking_on"] / best["tracking_on/fp32"], 3)
    results["on_over_no_verifier"] = round(best["tracking_on"] / best["tracking_on/no_verifier"], 3)
    before = best["tracking_on/fp32/old_preparation"]
    results["on_over_before_2026_12_06"] = round(best["tracking_on"] / before, 3)
    results["overlapped_over_on"] = round(best["tracking_on/overlapped"] / best["tracking_on"], 3)
    for name in args.detector:
        results[f"on_over_{name}"] = round(best["tracking_on"] / best[f"tracking_on/{name}"], 3)
        results[f"{name}/overlapped_over_{name}"] = round(
            best[f"tracking_on/{name}/overlapped"] / best[f"tracking_on/{name}"], 3)
        results[f"{name}/overlapped_over_overlapped"] = round(
            best[f"tracking_on/{name}/overlapped"] / best["tracking_on/overlapped"], 3)
    drawn = best["tracking_on/draw+h264"] / best["tracking_off/draw+h264"]
    results["on_over_off/draw+h264"] = round(drawn, 3)
    report = {
        "clip": f"{args.frames} frames, 640x480, a camera panning over {PHOTO}.jpg",
        "rounds": args.rounds, "goal_fps": 30, "people_tracked": sum(
            t.counted(analyzers["tracking_on"].options) for t in analyzers["tracking_on"].tracks()),
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
        "tracker_ms_per_frame": round(1000 * sum(spent) / max(1, len(spent)), 3),
        "frames_per_second": results,
    }
    import harness

    baseline = {k: v for k, v in results.items() if "_over_" not in k and (
        k.startswith("tracking_off") or k.endswith("old_preparation") or "fp32" in k)}
    harness.report("bench_tracking", report, baseline, vars(args),
                   ratio={k: v for k, v in results.items() if "_over_" in k})
    return 0


if __name__ == "__main__":
    sys.exit(main())
