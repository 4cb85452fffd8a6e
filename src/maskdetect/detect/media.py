"""`maskdetect detect` over many inputs: images and folders (in parallel), videos, a camera.

Every input is handled on its own: an unreadable image, a corrupt video or a missing camera is
reported and the rest of the batch goes on. Annotated images mirror the input's name under the
output folder; one JSON line per image (or video frame) records the faces, each the
`ImageResult.to_dict()` of `Predictor.predict`, with the frame number for video and camera frames.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskdetect.detect.inputs import Job, collect_inputs
from maskdetect.detect.log import RunLog, is_finished, part_path, previous_records
from maskdetect.images import ImageError
from maskdetect.labels import CLASSES

if TYPE_CHECKING:
    from maskdetect.predict import Predictor
    from maskdetect.results import ImageResult

log = logging.getLogger(__name__)


def annotate_image(predictor: Predictor, job: Job, out_dir: Path | None) -> dict:
    """Detect and classify one image; write its annotated copy; return its JSON record.

    The record is the image's `ImageResult.to_dict()` (path, width, height, faces), with
    "annotated" when a copy was written, or {"path", "error"} for an image that cannot be read.
    """
    try:
        result = predictor.predict(job.path)
    except (ImageError, OSError) as err:
        return {"path": str(job.path), "error": str(err)}
    record = result.to_dict()
    if out_dir is not None:
        target = out_dir / job.out_name
        target.parent.mkdir(parents=True, exist_ok=True)
        record["annotated"] = str(result.save(target))
    return record


def _frame_record(path: str, frame: int, result: ImageResult) -> dict:
    # A frame's record: where it came from and which frame it is, then its ImageResult.
    return {"path": path, "frame": frame, **result.to_dict()}


def annotate_video(predictor: Predictor, job: Job, out_dir: Path | None) -> Iterator[dict]:
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
            result = predictor.predict(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            yield _frame_record(str(job.path), frames, result)
            if out_dir is not None:
                if writer is None:
                    target = out_dir / job.out_name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    # VideoWriter picks the container by the suffix, so the temporary name keeps it.
                    tmp = target.with_name(f".{target.stem}.part.mp4")
                    height, width = frame.shape[:2]
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                writer.write(cv2.cvtColor(np.asarray(result.draw()), cv2.COLOR_RGB2BGR))
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


def run_camera(predictor: Predictor, index: int, out_dir: Path, max_frames: int = 0) -> Iterator[dict]:
    """Annotate a camera's frames: in a window where a display exists, else as JPEGs in out_dir.

    Yields one record per frame (path "camera:INDEX", the frame number, its `ImageResult`).

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
            result = predictor.predict(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            record = _frame_record(f"camera:{index}", frames, result)
            if window:
                drawn = cv2.cvtColor(np.asarray(result.draw()), cv2.COLOR_RGB2BGR)
                cv2.imshow(f"maskdetect camera {index} (q quits)", drawn)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
            else:
                target = out_dir / "camera" / f"frame_{frames:06d}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                record["annotated"] = str(result.save(target))
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


@dataclass
class DetectSummary:
    """What a `detect_files` run did.

    Attributes:
        counts: faces found per class, every class present (zero where none was found).
        failures: one line per input left out or cut short (a missing or unreadable file, a corrupt
            or truncated video, a missing camera), naming it and why.
        records: JSON lines in the log, those kept from a resumed run included.
        annotated: annotated images, videos and camera frames that the log names.
        resumed: inputs skipped because an interrupted run had finished them.
        jsonl: the JSON Lines log.
    """

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    failures: list[str] = field(default_factory=list)
    records: int = 0
    annotated: int = 0
    resumed: int = 0
    jsonl: Path | None = None


def detect_files(
    predictor: Predictor,
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    workers: int = 2,
    resume: bool = False,
    images: bool = True,
    jsonl: str | os.PathLike | None = None,
    video_predictor: Predictor | None = None,
    camera: int | None = None,
    frames: int = 0,
) -> DetectSummary:
    """Find and classify the faces in images, folders (recursive) and videos, then a camera.

    Each record reaches the JSON Lines log as its input finishes (`maskdetect.detect.log`): a killed
    run keeps them in `<jsonl>.part`, and `resume=True` skips the inputs it had finished.

    Args:
        predictor: classifies the faces of photos (`Predictor.predict`).
        inputs: image and video files, and folders of them.
        out: the output folder: annotated copies mirror the inputs' names under it.
        workers: images processed at once (threads).
        resume: skip the inputs that an interrupted run with the same log had finished (matched by
            resolved path); the records of its inputs that this run is not given are kept.
        images: write annotated images and videos (False: the JSON Lines only).
        jsonl: the log (default `out/detections.jsonl`).
        video_predictor: for video and camera frames, e.g. `predictor.with_detector("blazeface-fast")`
            (default: `predictor`).
        camera: also read this camera (e.g. 0) after the files, until `frames` frames or q / Ctrl-C.
        frames: stop the camera after this many frames (0: no limit).

    Returns:
        Faces per class, the failures, and what was written.

    >>> summary = detect_files(Predictor(), ["photos/", "clip.mp4"], "out", workers=4)  # doctest: +SKIP
    >>> summary.counts, summary.failures  # doctest: +SKIP
    ({'covered': 12, 'incorrect': 1, 'uncovered': 3}, ['photos/empty.jpg: empty file (0 bytes)'])
    """
    from tqdm import tqdm

    out = Path(out)
    out_dir = out if images else None
    out.mkdir(parents=True, exist_ok=True)
    jsonl = Path(jsonl) if jsonl is not None else out / "detections.jsonl"
    frame_predictor = video_predictor or predictor
    jobs, failures = collect_inputs(inputs)
    previous = previous_records(jsonl) if resume else {}
    done = {_input_key(path) for path, records in previous.items() if is_finished(records)}
    todo = [job for job in jobs if _input_key(job.path) not in done]
    # Done again now: the unfinished inputs given to this run, and its camera. Every other input of
    # the earlier run keeps its records (a resumed `detect photos/` keeps an earlier clip's frames).
    redo = {_input_key(job.path) for job in todo} | ({f"camera:{camera}"} if camera is not None else set())
    kept = [record for path, records in previous.items() if _input_key(path) not in redo
            for record in records]
    if previous:
        given = {_input_key(job.path) for job in jobs}
        others = sum(_input_key(path) not in given for path in previous)
        log.warning("resuming: %d inputs already done, %d to go; records of %d inputs not given now kept",
                    len(jobs) - len(todo), len(todo), others)
    elif part_path(jsonl).exists():
        log.warning("%s holds an interrupted run's records: starting again (--resume continues it)",
                    part_path(jsonl))
    run_log = RunLog(jsonl, kept)
    records: list[dict] = list(kept)

    def keep(new: Iterator[dict]) -> None:
        for record in new:
            records.append(record)
            run_log.write(record)

    photos = [j for j in todo if j.kind == "image"]
    try:
        if photos:
            with ThreadPoolExecutor(max(1, workers)) as pool:
                results = pool.map(lambda job: annotate_image(predictor, job, out_dir), photos)
                keep(tqdm(results, total=len(photos), desc="images", unit="img", disable=None))
        for job in (j for j in todo if j.kind == "video"):
            keep(tqdm(annotate_video(frame_predictor, job, out_dir), desc=job.path.name, unit="frame",
                      disable=None))
        if camera is not None:
            try:
                keep(run_camera(frame_predictor, camera, out, frames))
            except FileNotFoundError as err:
                failures.append(str(err))
    except BaseException:
        run_log.close()  # killed or failed: the .part file keeps every finished input for --resume
        raise
    run_log.finish()
    return _summarise(records, failures, len(jobs) - len(todo), jsonl)


def _input_key(path: str | Path) -> str:
    # Records name an input as it was given; the same file given another way must match it.
    text = str(path)
    return text if text.startswith("camera:") else str(Path(text).resolve())


def _summarise(records: list[dict], failures: list[str], resumed: int, jsonl: Path) -> DetectSummary:
    failures = [*failures, *(r["error"] for r in records if "error" in r)]
    failures.extend(r["warning"] for r in records if "warning" in r)
    counts = Counter(dict.fromkeys(CLASSES, 0))
    for record in records:
        counts.update(face["label"] for face in record.get("faces", []))
    annotated = len({r["annotated"] for r in records if "annotated" in r})
    return DetectSummary(dict(counts), failures, len(records), annotated, resumed, jsonl)
