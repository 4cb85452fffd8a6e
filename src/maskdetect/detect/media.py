"""`maskdetect detect` over many inputs: images and folders (in parallel), videos, a camera.

Every input is handled on its own: an unreadable image, a corrupt video or a missing camera is
reported and the rest of the batch goes on. Annotated images mirror the input's name under the
output folder; one JSON line per image (or video frame) records the faces, each the
`ImageResult.to_dict()` of `Predictor.predict`, with the frame number for video and camera frames.
Videos, stream URLs and the camera are read by `VideoAnalyzer` (`detect/video.py`), which tracks
their faces into people and writes the tracks, the summary and the timeline beside them.
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
from PIL import Image

from maskdetect.detect.inputs import Job, find_jobs, is_stream_url
from maskdetect.detect.log import RunLog, is_finished, part_path, previous_records
from maskdetect.detect.tracks import TrackOptions
from maskdetect.detect.video import VideoAnalyzer
from maskdetect.fileio import atomic_path
from maskdetect.images import ImageError
from maskdetect.labels import CLASSES

if TYPE_CHECKING:
    from maskdetect.predict import Predictor

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


def annotate_video(predictor: Predictor, job: Job, out_dir: Path | None, *, files_dir: Path | None = None,
                   tracking: bool = True, options: TrackOptions | None = None) -> Iterator[dict]:
    """Detect, classify and track the faces of a video file or stream (`VideoAnalyzer.run`).

    Yields one record per frame (each face with its track id and steady label), then one for the
    video: frames read, people by verdict, the files written, and an error or a warning when it
    could not be opened or ended early (the tracks so far are still written).

    Args:
        predictor: the video predictor.
        job: the video (`Job.source` is its path or URL).
        out_dir: write the annotated video here under `job.out_name` (None: no annotated video).
        files_dir: write the tracks, summary and timeline here (default `out_dir`; None: neither).
        tracking: track faces into people (False: frames on their own, as before tracks).
        options: tracking settings.
    """
    files_dir = files_dir if files_dir is not None else out_dir
    stem = str(job.out_name)[: -len(".annotated.mp4")] if str(job.out_name).endswith(".annotated.mp4") \
        else str(job.out_name.with_suffix(""))
    analyzer = VideoAnalyzer(predictor, options, tracking=tracking)
    yield from analyzer.run(
        job.source, annotated=out_dir / job.out_name if out_dir is not None else None,
        files_base=files_dir / stem if files_dir is not None and tracking else None,
        images=out_dir is not None)


def run_camera(predictor: Predictor, index: int, out_dir: Path, max_frames: int = 0, *,
               tracking: bool = True, options: TrackOptions | None = None) -> Iterator[dict]:
    """Annotate a camera's frames, with the running counts of people: in a window where a display
    exists, else as JPEGs in out_dir/camera/. The tracks go to out_dir/camera-INDEX.tracks.jsonl
    (and .summary.json, .timeline.csv) when the camera stops, q or Ctrl-C ends the run, or
    `max_frames` are read.

    Yields one record per frame (path "camera:INDEX", the frame number, its `ImageResult`, each
    face's track), then one for the run; a camera that is not there gives one record with an error.
    """
    window = _has_display()

    def show(drawn: np.ndarray, frame: int) -> dict | bool | None:
        import cv2

        if window:
            cv2.imshow(f"maskdetect camera {index} (q quits)", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            return False if cv2.waitKey(1) & 0xFF == ord("q") else None
        target = out_dir / "camera" / f"frame_{frame:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            Image.fromarray(drawn).save(tmp, format="JPEG", quality=90)
        return {"annotated": str(target)}

    analyzer = VideoAnalyzer(predictor, options, tracking=tracking)
    try:
        yield from analyzer.run(index, files_base=out_dir / f"camera-{index}", max_frames=max_frames,
                                show=show)
    finally:
        if window:
            import cv2

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
            or truncated video, a missing camera), naming it and why; each is also a record with an
            "error" (or, for a video that ended early, a "warning") in the log.
        records: JSON lines in the log, those kept from a resumed run included.
        annotated: annotated images, videos and camera frames that the log names.
        resumed: inputs skipped because an interrupted run had finished them.
        jsonl: the JSON Lines log.
        people: people (face tracks) by verdict, summed over the videos, streams and camera.
        detected: inputs this run read (the camera counts as one); 0 when a resumed run found all
            done before.
        annotated_now: annotated files this run wrote (`annotated` counts those of earlier runs too).
    """

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    failures: list[str] = field(default_factory=list)
    records: int = 0
    annotated: int = 0
    resumed: int = 0
    jsonl: Path | None = None
    people: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    detected: int = 0
    annotated_now: int = 0


def check_inputs(inputs: Sequence[str | os.PathLike], camera: int | None = None
                 ) -> tuple[list[Job], list[tuple[str, str]]]:
    """The jobs of `inputs` (`inputs.find_jobs`), refused when there is nothing at all to read.

    `detect` calls it before it loads a model, and `detect_files` before it writes anything: a run
    whose every input is missing fails at once, naming them. When some inputs can be read, the
    others are only reported (each with its reason) and the run goes on.

    Args:
        inputs: files, folders and stream URLs, as `detect_files` takes them.
        camera: a camera to read too (then no input is needed).

    Returns:
        The jobs, and (path, why) per input left out.

    Raises:
        FileNotFoundError: no input can be read and no camera is given (every one named, with why).
        ValueError: the inputs exist but hold no image or video (empty folders).

    >>> check_inputs(["typo.jpg"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: typo.jpg: no such file or folder
    """
    jobs, skipped = find_jobs(inputs)
    if jobs or camera is not None:
        return jobs, skipped
    if not skipped:
        given = ", ".join(map(str, inputs)) or "no input given"
        raise ValueError(f"no image or video to read in {given}")
    lines = [f"{path}: {why}" for path, why in skipped]
    more = f"; and {len(lines) - 5} more" if len(lines) > 5 else ""
    raise FileNotFoundError("; ".join(lines[:5]) + more)


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
    tracking: bool = True,
    track_options: TrackOptions | None = None,
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
        tracking: follow each face of a video, stream or camera across frames: one track per person
            with one verdict, written beside the annotated video (`clip.tracks.jsonl`,
            `clip.summary.json`, `clip.timeline.csv` and `.png`, `clip.thumbs/`).
        track_options: tracking settings (`TrackOptions`).

    Returns:
        Faces per class, the failures, and what was written.

    Raises:
        FileNotFoundError: no input can be read and no camera is given (`check_inputs`); nothing
            is written.
        ValueError: the inputs hold no image or video, and no camera is given.

    >>> summary = detect_files(Predictor(), ["photos/", "clip.mp4"], "out", workers=4)  # doctest: +SKIP
    >>> summary.counts, summary.failures  # doctest: +SKIP
    ({'covered': 12, 'incorrect': 1, 'uncovered': 3}, ['photos/empty.jpg: empty file (0 bytes)'])
    """
    from tqdm import tqdm

    jobs, skipped = check_inputs(inputs, camera)
    out = Path(out)
    out_dir = out if images else None
    out.mkdir(parents=True, exist_ok=True)
    jsonl = Path(jsonl) if jsonl is not None else out / "detections.jsonl"
    frame_predictor = video_predictor or predictor
    previous = previous_records(jsonl) if resume else {}
    done = {_input_key(path) for path, records in previous.items() if is_finished(records)}
    todo = [job for job in jobs if _input_key(job.path) not in done]
    # Done again now: the unfinished inputs given to this run, and its camera. Every other input of
    # the earlier run keeps its records (a resumed `detect photos/` keeps an earlier clip's frames).
    # An input left out this run (a missing path) gets a new record too: its old one goes.
    redo = {_input_key(job.path) for job in todo} | ({f"camera:{camera}"} if camera is not None else set())
    redo |= {_input_key(path) for path, _ in skipped}
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
            records.append(run_log.write(record))  # what was written: a NaN result becomes an error

    # Inputs left out are failed records, as an unreadable photo's is: named in the log and retried
    # by --resume.
    keep({"path": path, "error": f"{path}: {why}"} for path, why in skipped)

    photos = [j for j in todo if j.kind == "image"]
    try:
        if photos:
            with ThreadPoolExecutor(max(1, workers)) as pool:
                results = pool.map(lambda job: annotate_image(predictor, job, out_dir), photos)
                keep(tqdm(results, total=len(photos), desc="images", unit="img", disable=None))
        for job in (j for j in todo if j.kind in ("video", "stream")):
            keep(tqdm(annotate_video(frame_predictor, job, out_dir, files_dir=out, tracking=tracking,
                                     options=track_options),
                      desc=job.path.name, unit="frame", disable=None))
        if camera is not None:
            keep(run_camera(frame_predictor, camera, out, frames, tracking=tracking, options=track_options))
    except BaseException:
        run_log.close()  # killed or failed: the .part file keeps every finished input for --resume
        raise
    run_log.finish()
    summary = _summarise(records, len(jobs) - len(todo), jsonl)
    summary.detected = len(todo) + (camera is not None)
    summary.annotated_now = len({r["annotated"] for r in records[len(kept):] if "annotated" in r})
    return summary


def _input_key(path: str | Path) -> str:
    # Records name an input as it was given; the same file given another way must match it.
    text = str(path)
    return text if text.startswith("camera:") or is_stream_url(text) else str(Path(text).resolve())


def _summarise(records: list[dict], resumed: int, jsonl: Path) -> DetectSummary:
    failures = [r["error"] for r in records if "error" in r]
    failures.extend(r["warning"] for r in records if "warning" in r)
    counts = Counter(dict.fromkeys(CLASSES, 0))
    for record in records:
        counts.update(face["label"] for face in record.get("faces", []))
    annotated = len({r["annotated"] for r in records if "annotated" in r})
    people = Counter(dict.fromkeys(CLASSES, 0))
    for record in records:
        people.update(record.get("people", {}))
    return DetectSummary(dict(counts), failures, len(records), annotated, resumed, jsonl, dict(people))
