"""`maskdetect detect` over many inputs: images and folders (in parallel), videos, a camera.

Every input is handled on its own: an unreadable image, a corrupt video or a missing camera is
reported and the rest of the batch goes on. Annotated images mirror the input's name under the
output folder; one JSON line per image (or video frame) records the faces.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from maskdetect.detect.log import RunLog, finished_records, part_path
from maskdetect.draw import draw_results
from maskdetect.fileio import atomic_path, unused_name
from maskdetect.images import IMAGE_SUFFIXES, ImageError, open_image
from maskdetect.labels import CLASSES

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}



@dataclass(frozen=True)
class Job:
    """One input file and the path, under the output folder, that its annotated copy takes."""

    path: Path
    out_name: Path
    kind: str  # "image" or "video"


def collect_inputs(inputs: list[str | Path]) -> tuple[list[Job], list[str]]:
    """Expand files and folders (recursively) into jobs; missing inputs come back as error lines.

    Every job gets an output name of its own, compared without case (as macOS and Windows do): two
    inputs that would write the same file, `x.jpg` in two folders given apart, or `a.tif` beside
    `a.webp` (both annotated as `a.jpg`), never overwrite each other.

    >>> collect_inputs(["/no/such/file.jpg"])[1]
    ['/no/such/file.jpg: no such file or folder']
    """
    jobs, errors, seen = [], [], set()
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            wanted = {*IMAGE_SUFFIXES, *VIDEO_SUFFIXES}
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
            pairs = [(p, Path(path.name) / p.relative_to(path)) for p in files]
        elif path.is_file():
            pairs = [(path, Path(path.name))]
        else:
            errors.append(f"{raw}: no such file or folder")
            continue
        for file, relative in pairs:
            kind = "video" if file.suffix.lower() in VIDEO_SUFFIXES else "image"
            name = unused_name(functools.partial(_output_name, relative, kind), relative.stem, seen)
            jobs.append(Job(file, Path(name), kind))
    return jobs, errors


def _output_name(relative: Path, kind: str, stem: str) -> str:
    # The annotated copy of `relative`, named `stem`: images stay JPEG or PNG, videos become mp4.
    named = relative.with_name(stem + relative.suffix)
    if kind == "video":
        return str(named.with_suffix(".annotated.mp4"))
    return str(named if named.suffix.lower() in (".jpg", ".png") else named.with_suffix(".jpg"))


def annotate_image(predictor, job: Job, out_dir: Path | None) -> dict:
    """Detect and classify one image; write its annotated copy; return its JSON record."""
    try:
        image = open_image(job.path)
        faces = predictor(image)
    except (ImageError, OSError) as err:
        return {"path": str(job.path), "error": str(err)}
    record = {"path": str(job.path), "width": image.width, "height": image.height,
              "faces": [f.to_dict() for f in faces]}
    if out_dir is not None:
        target = out_dir / job.out_name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            kind = "PNG" if target.suffix.lower() == ".png" else "JPEG"
            draw_results(image, faces).save(tmp, format=kind, quality=90)
        record["annotated"] = str(target)
    return record


def annotate_video(predictor, job: Job, out_dir: Path | None) -> Iterator[dict]:
    """Detect faces in every frame of a video; write an annotated mp4 (mp4v). Yields one record per
    frame, then a summary record; a video that cannot be opened or ends early says so in it.
    """
    import cv2

    capture = cv2.VideoCapture(str(job.path))
    if not capture.isOpened():
        error = f"{job.path}: not a video OpenCV can open (corrupt or unknown format)"
        yield {"path": str(job.path), "error": error}
        return
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    writer, target, tmp, frames, finished = None, None, None, 0, False
    try:
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            faces = predictor(rgb)
            yield {"path": str(job.path), "frame": frames, "faces": [f.to_dict() for f in faces]}
            if out_dir is not None:
                if writer is None:
                    target = out_dir / job.out_name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    # VideoWriter picks the container by the suffix, so the temporary name keeps it.
                    tmp = target.with_name(f".{target.stem}.part.mp4")
                    height, width = frame.shape[:2]
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                drawn = np.asarray(draw_results(Image.fromarray(rgb), faces))
                writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            frames += 1
        finished = True
    finally:
        capture.release()
        if writer is not None:
            writer.release()
            # Publish only a video that was read to its end: an error or an abandoned run (the caller
            # stopped iterating) must not leave a partial file under the final name.
            if finished:
                os.replace(tmp, target)
            else:
                tmp.unlink(missing_ok=True)
    summary = {"path": str(job.path), "frames": frames, "expected_frames": expected}
    if target is not None:
        summary["annotated"] = str(target)
    if frames == 0:
        summary["error"] = f"{job.path}: no frame could be decoded (empty or corrupt video)"
    elif expected and frames < expected:
        summary["warning"] = f"{job.path}: video ended early after {frames} of {expected} frames (truncated?)"
    yield summary


def run_camera(predictor, index: int, out_dir: Path, max_frames: int = 0) -> Iterator[dict]:
    """Annotate a camera's frames: in a window where a display exists, else as JPEGs in out_dir.

    Raises:
        FileNotFoundError: no camera at that index.
    """
    import cv2

    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        capture.release()
        raise FileNotFoundError(f"camera {index} is not there or cannot be opened")
    window = _has_display()
    frames = 0
    try:
        while not max_frames or frames < max_frames:
            ok, frame = capture.read()
            if not ok:
                log.warning("camera %d stopped delivering frames after %d", index, frames)
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            faces = predictor(rgb)
            drawn = cv2.cvtColor(np.asarray(draw_results(Image.fromarray(rgb), faces)), cv2.COLOR_RGB2BGR)
            record = {"path": f"camera:{index}", "frame": frames, "faces": [f.to_dict() for f in faces]}
            if window:
                cv2.imshow(f"maskdetect camera {index} (q quits)", drawn)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
            else:
                target = out_dir / "camera" / f"frame_{frames:06d}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(target), drawn)
                record["annotated"] = str(target)
            yield record
            frames += 1
    except KeyboardInterrupt:  # Ctrl-C ends a camera run normally: the JSON Lines still get written
        log.info("camera %d stopped by the user after %d frames", index, frames)
    finally:
        capture.release()
        if window:
            cv2.destroyAllWindows()


def _has_display() -> bool:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import cv2

    try:  # opencv-python-headless has no GUI: imshow raises
        cv2.namedWindow("maskdetect-probe")
        cv2.destroyWindow("maskdetect-probe")
        return True
    except cv2.error:
        return False


def run_detect_job(args: argparse.Namespace) -> tuple[Counter, list[str]]:
    """The whole `maskdetect detect` run: returns faces per class and the failures.

    Each record reaches the JSON Lines log as its input finishes (`detect.log`); `args.resume` skips
    the inputs that an interrupted run with the same log had finished.
    """
    from tqdm import tqdm

    from maskdetect.predict import Predictor

    out_dir = None if args.no_images else args.out
    args.out.mkdir(parents=True, exist_ok=True)
    jsonl = args.jsonl or args.out / "detections.jsonl"
    jobs, failures = collect_inputs(args.inputs)
    done = finished_records(jsonl) if args.resume else {}
    kept = [record for job in jobs for record in done.get(str(job.path), [])]
    todo = [job for job in jobs if str(job.path) not in done]
    if done:
        log.warning("resuming: %d inputs already done, %d to go", len(jobs) - len(todo), len(todo))
    elif part_path(jsonl).exists():
        log.warning("%s holds an interrupted run's records: starting again (--resume continues it)",
                    part_path(jsonl))
    jobs = todo
    run_log = RunLog(jsonl, kept)
    records: list[dict] = list(kept)

    def keep(new: Iterator[dict]) -> None:
        for record in new:
            records.append(record)
            run_log.write(record)

    options = dict(backend=args.backend, detection_threshold=args.threshold)
    images = [j for j in jobs if j.kind == "image"]
    videos = [j for j in jobs if j.kind == "video"]
    predictor = None
    try:
        if images:
            predictor = Predictor(args.checkpoint, detector=args.detector, **options)
            with ThreadPoolExecutor(max(1, args.workers)) as pool:
                results = pool.map(lambda job: annotate_image(predictor, job, out_dir), images)
                keep(tqdm(results, total=len(images), desc="images", unit="img", disable=None))
        if videos or args.camera is not None:
            if predictor is None:
                frame_predictor = Predictor(args.checkpoint, detector=args.video_detector, **options)
            else:  # photos and videos in one run: load the classifier once
                frame_predictor = predictor.with_detector(args.video_detector, args.threshold)
            for job in videos:
                keep(tqdm(annotate_video(frame_predictor, job, out_dir), desc=job.path.name, unit="frame",
                          disable=None))
            if args.camera is not None:
                try:
                    keep(run_camera(frame_predictor, args.camera, args.out, args.frames))
                except FileNotFoundError as err:
                    failures.append(str(err))
    except BaseException:
        run_log.close()  # killed or failed: the .part file keeps every finished input for --resume
        raise
    run_log.finish()
    failures.extend(r["error"] for r in records if "error" in r)
    failures.extend(r["warning"] for r in records if "warning" in r)
    counts = Counter({name: 0 for name in CLASSES})
    for record in records:
        counts.update(face["label"] for face in record.get("faces", []))
    return counts, failures
