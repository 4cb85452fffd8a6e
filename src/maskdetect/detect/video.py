"""`VideoAnalyzer`: a video file, a stream URL or a camera, read frame by frame into tracked people.

The one read loop behind `maskdetect detect clip.mp4`, `detect http://...`, `detect --camera 0` and
the Python API. Each frame goes through `Predictor.predict` (the fast video detector for the CLI),
then `FaceTracker.update`; the annotated frame shows every face's track id and steady label and the
running counts. When the source ends, early or not (a truncated file, a stream that stops, a camera
that disappears), the tracks so far are written (`timeline.write_track_files`) and the last record
says why it ended.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from maskdetect.detect.timeline import summarise_tracks, write_track_files
from maskdetect.detect.tracks import FaceTracker, Track, TrackedFace, TrackOptions
from maskdetect.detect.video_out import VideoSink, VideoWriteError
from maskdetect.images import DEFAULT_MAX_PIXELS
from maskdetect.labels import CLASSES

if TYPE_CHECKING:
    from maskdetect.predict import Predictor
    from maskdetect.results import ImageResult

log = logging.getLogger(__name__)

Source = str | int | os.PathLike


@dataclass
class VideoReport:
    """What `VideoAnalyzer.analyze` found in one video.

    Attributes:
        tracks: every track (`Track`), by id.
        summary: people by verdict and more (`timeline.summarise_tracks`).
        frames: frames read.
        files: what was written, by kind (annotated, tracks, summary, timeline_csv, ...).
        ended: why reading stopped early (a truncated file, a stream or camera that stopped), or "".
    """

    tracks: list[Track]
    summary: dict
    frames: int
    files: dict[str, str] = field(default_factory=dict)
    ended: str = ""


class VideoAnalyzer:
    """Find, classify and track the faces of a video, a stream or a camera: one verdict per person.

    Args:
        predictor: finds and classifies faces in each frame (e.g.
            `Predictor().video_twin()`, the bundle's video detector, which `detect` uses for video).
        options: tracking settings.
        tracking: False labels frames on their own (no tracks, no people counts).
        max_pixels: refuse a video whose frames are larger than this (width x height, as the
            container declares them), before decoding any: the limit of images.
        overlap: find the faces of the next frame in a second thread while this one's are
            classified (`process_frames`; same answers, 1.6-1.7x the frames a second on two cores).

    >>> analyzer = VideoAnalyzer(Predictor().video_twin())  # doctest: +SKIP
    >>> report = analyzer.analyze("clip.mp4", out="results")  # doctest: +SKIP
    >>> report.summary["people"]  # doctest: +SKIP
    {'covered': 4, 'incorrect': 1, 'uncovered': 2}
    """

    def __init__(self, predictor: Predictor, options: TrackOptions | None = None, *, tracking: bool = True,
                 max_pixels: int = DEFAULT_MAX_PIXELS, overlap: bool = True):
        self.predictor = predictor
        self.overlap = overlap
        self.options = options or TrackOptions()
        self.tracking = tracking
        self.max_pixels = max_pixels
        self.tracker: FaceTracker | None = None
        self.fps = 25.0

    def start(self, fps: float) -> None:
        """Begin a new video at this frame rate (forgets the tracks of the last one)."""
        self.fps = fps if fps and fps > 0 else 25.0
        classes = tuple(getattr(self.predictor, "classes", CLASSES))
        self.tracker = FaceTracker(self.fps, self.options, classes) if self.tracking else None

    def process(self, rgb: np.ndarray, frame: int) -> tuple[ImageResult, list[TrackedFace]]:
        """One frame (RGB array): its faces, and each face with its track (-1 without tracking)."""
        return self._tracked(self.predictor.predict(rgb), frame)

    def process_frames(self, frames: Iterable[np.ndarray], first: int = 0
                       ) -> Iterator[tuple[ImageResult, list[TrackedFace]]]:
        """`process` for each frame in turn (RGB arrays, numbered from `first`), the same answers.

        With `overlap` on, the next frame is read and its faces found (`Predictor.find`) in a
        second thread while this one is classified and tracked (`Predictor.judge`): the detector
        and the classifier each keep a core busy, and the frames still come out in order. Stopping
        early (closing the iterator) waits for that thread's frame, so nothing reads on behind it.
        """
        find, judge = getattr(self.predictor, "find", None), getattr(self.predictor, "judge", None)
        if not self.overlap or find is None or judge is None:
            for index, rgb in enumerate(frames, first):
                yield self.process(rgb, index)
            return
        source = iter(frames)

        def next_found():  # in the worker: read a frame and find its faces; None at the end
            rgb = next(source, None)
            return None if rgb is None else find(rgb)

        with ThreadPoolExecutor(1, thread_name_prefix="maskdetect-find") as worker:
            pending = worker.submit(next_found)
            try:
                for index in itertools.count(first):
                    found = pending.result()
                    if found is None:
                        return
                    pending = worker.submit(next_found)
                    yield self._tracked(judge(found), index)
            finally:
                with contextlib.suppress(Exception):  # its error, if any, is not this one's; Ctrl-C goes on
                    pending.result()

    def _tracked(self, result: ImageResult, frame: int) -> tuple[ImageResult, list[TrackedFace]]:
        if self.tracker is None and self.tracking:
            self.start(self.fps)
        if self.tracker is None:
            return result, [TrackedFace(face, -1, face.label) for face in result.faces]
        return result, self.tracker.update(result, frame)

    def running_counts(self) -> dict[str, int]:
        """People so far (tracks long enough to count) by their verdict so far."""
        counts = dict.fromkeys(CLASSES, 0)
        for track in self.tracks():
            if track.counted(self.options):
                counts[track.verdict] = counts.get(track.verdict, 0) + 1
        return counts

    def tracks(self) -> list[Track]:
        return self.tracker.tracks() if self.tracker is not None else []

    def overlay_text(self, faces: list[TrackedFace]) -> str:
        """The running counts the annotated frame shows: faces in view, then people so far.

        A face counts as a person once its track is long enough (`TrackOptions.min_seconds`), as in
        the summary; until then it is in view but "too new to count", so the first frames never say
        "people 0" beside boxed faces without saying why.

        >>> VideoAnalyzer(None).overlay_text([])
        'in view 0 faces | people so far 0: 0 covered, 0 incorrect, 0 uncovered'
        """
        counts = self.running_counts()
        tracks = {track.track_id: track for track in self.tracks()}
        new = sum(face.track_id not in tracks or not tracks[face.track_id].counted(self.options)
                  for face in faces)
        in_view = f"in view {len(faces)} face{'' if len(faces) == 1 else 's'}"
        in_view += f" ({new} too new to count)" if new else ""
        people = f"people so far {sum(counts.values())}: " + ", ".join(f"{counts[c]} {c}" for c in CLASSES)
        return f"{in_view} | {people}"

    def draw(self, result: ImageResult, faces: list[TrackedFace]) -> Image.Image:
        """The frame with each face's box, track id and steady label, and the running counts on top."""
        from maskdetect.draw import draw_results

        canvas = draw_results(result.image, faces)
        if self.tracker is not None:
            _banner(canvas, self.overlay_text(faces))
        return canvas

    def run(self, source: Source, name: str | None = None, *, annotated: Path | None = None,
            files_base: Path | None = None, images: bool = True, max_frames: int = 0,
            show: Callable[[np.ndarray, int], dict | bool | None] | None = None) -> Iterator[dict]:
        """Read `source` to its end; yield one record per frame, then one for the whole video.

        Args:
            source: a video file, a URL OpenCV reads (http MJPEG or video, rtsp), or a camera index.
            name: what the records call it (default `str(source)`, "camera:N" for a camera).
            annotated: write the annotated video here (H.264 mp4).
            files_base: write the tracks, summary and timeline beside this path (`x` -> `x.tracks.jsonl`).
            images: write the timeline plot and the thumbnails too.
            max_frames: stop after this many frames (0: at the end).
            show: called with each annotated frame (RGB) and its index; it returns None to go on,
                False to stop, or fields to add to the frame's record.
        """
        import cv2

        camera = isinstance(source, int)
        name = name or (f"camera:{source}" if camera else str(source))
        capture = cv2.VideoCapture(source if camera else str(source))
        if not capture.isOpened():
            capture.release()
            what = f"camera {source} is not there or cannot be opened" if camera else \
                f"{name}: not a video OpenCV can open (missing, corrupt, unknown format, unreachable stream)"
            yield {"path": name, "error": what}
            return
        expected = 0 if camera else max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        # Opening reads the container's header; the first read decodes a whole frame (1.9 GB for a
        # 3 MB AVI of 16000x16000 MJPEG frames): refuse by the declared size before it.
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > self.max_pixels:
            capture.release()
            yield {"path": name, "frames": 0, "expected_frames": expected,
                   "error": f"{name}: frames of {width}x{height} = {width * height:,} pixels are over the "
                            f"limit of {self.max_pixels:,}: refused before decoding"}
            return
        self.start(capture.get(cv2.CAP_PROP_FPS) or 25.0)
        sink = VideoSink(annotated, self.fps) if annotated is not None else None
        unwritten = ""  # why the annotated video was left out
        frames, finished, halted = 0, False, False
        reader = _FrameReader(capture, max_frames)
        processed = self.process_frames(reader)
        try:
            for result, faces in processed:
                record = {"path": name, "frame": frames, **result.to_dict()}
                for face_record, face in zip(record["faces"], faces, strict=True):
                    face_record.update(track_id=face.track_id, track_label=face.label)
                shown = None
                if sink is not None or show is not None:
                    drawn = np.asarray(self.draw(result, faces))
                    if sink is not None:
                        try:
                            sink.write(drawn)
                        except VideoWriteError as err:  # the detections go on without the picture
                            sink.discard()
                            sink, unwritten = None, f"{err}: the annotated video is left out"
                            log.warning(unwritten)
                    shown = show(drawn, frames) if show is not None else None
                    if isinstance(shown, dict):
                        record.update(shown)
                yield record
                frames += 1
                if shown is False:
                    halted = True
                    break
            finished = True
        except KeyboardInterrupt:  # Ctrl-C ends a camera or stream run normally: its tracks are written
            if not camera and expected:
                raise
            log.info("%s stopped by the user after %d frames", name, frames)
            finished = True
        finally:
            processed.close()  # waits for the frame being read ahead, so the capture is free to go
            capture.release()
            if sink is not None and not finished:
                sink.discard()  # an error or an abandoned run: no partial file under the final name
        stopped = reader.ran_out and not halted  # reading ahead may have met the end after a halt
        summary = {"path": name, "frames": frames, "expected_frames": expected}
        if sink is not None and (published := sink.publish()) is not None:
            summary.update(annotated=str(published), codec=sink.codec)
        if frames == 0 and not camera:
            summary["error"] = f"{name}: no frame could be decoded (empty or corrupt video)"
        else:
            summary.update(self._ended(name, camera, frames, expected, stopped, max_frames))
        if unwritten:
            summary["warning"] = "; ".join(filter(None, (summary.get("warning"), unwritten)))
        if self.tracker is not None and frames:
            people = summarise_tracks(self.tracks(), self.options, frames, self.fps)
            summary.update(people=people["people"], people_total=people["people_total"])
            if files_base is not None:
                try:
                    summary["files"] = write_track_files(self.tracks(), self.options, files_base, frames,
                                                         self.fps, images=images)
                except ValueError as err:  # a number that is not finite: this video failed, not the run
                    summary["error"] = str(err)
        yield summary

    def _ended(self, name: str, camera: bool, frames: int, expected: int, stopped: bool,
               limit: int) -> dict[str, str]:
        # Why reading stopped early: a truncated file is a warning (the run's exit status says so); a
        # camera or a live stream that stops is how such runs end, a note that is logged.
        so_far = "; the tracks so far are written" if self.tracking and frames else ""
        if expected and stopped and frames and frames < expected:
            return {"warning": f"{name}: video ended early after {frames} of {expected} frames "
                               f"(truncated?){so_far}"}
        if (camera or not expected) and stopped and frames and (not limit or frames < limit):
            what = "camera stopped delivering frames" if camera else "the stream stopped"
            note = f"{name}: {what} after {frames} frames{so_far}"
            log.warning(note)
            return {"note": note}
        return {}

    def analyze(self, source: Source, out: str | os.PathLike | None = None, *, images: bool = True,
                max_frames: int = 0) -> VideoReport:
        """Run a whole video, stream or camera; with `out`, write the annotated video and track files.

        The files are named after the source: `out/clip.annotated.mp4`, `out/clip.tracks.jsonl`,
        `out/clip.summary.json`, `out/clip.timeline.csv` and `.png`, `out/clip.thumbs/`.

        Raises:
            FileNotFoundError: the source cannot be opened (names it).
        """
        stem = f"camera-{source}" if isinstance(source, int) else Path(str(source)).stem or "stream"
        base = Path(out) / stem if out is not None else None
        annotated = base.with_name(stem + ".annotated.mp4") if base is not None and images else None
        records = list(self.run(source, annotated=annotated, files_base=base, images=images,
                                max_frames=max_frames))
        last = records[-1]
        if "error" in last and "frames" not in last:
            raise FileNotFoundError(last["error"])
        files = dict(last.get("files", {}))
        if "annotated" in last:
            files["annotated"] = last["annotated"]
        summary = summarise_tracks(self.tracks(), self.options, last.get("frames", 0), self.fps)
        ended = last.get("warning") or last.get("note") or last.get("error", "")
        return VideoReport(self.tracks(), summary, last.get("frames", 0), files, ended)


class _FrameReader:
    """A capture's frames as RGB arrays, up to `limit` (0: all); `ran_out` once the source had no more."""

    def __init__(self, capture, limit: int):
        self.capture, self.limit, self.ran_out = capture, limit, False

    def __iter__(self) -> Iterator[np.ndarray]:
        import cv2

        count = 0
        while not self.limit or count < self.limit:
            ok, frame = self.capture.read()
            if not ok or frame is None:
                self.ran_out = True
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            count += 1


def _banner(canvas: Image.Image, text: str) -> None:
    # The running counts in a dark strip across the top of the frame: one line, or a line for each
    # part ("in view ... | people so far ...") when one is wider than the frame.
    from maskdetect.draw import _font

    draw = ImageDraw.Draw(canvas)
    font = _font(max(11, round(canvas.width / 45)))
    if draw.textbbox((0, 0), text, font=font)[2] > canvas.width:
        text = text.replace(" | ", "\n")
    x0, y0, x1, y1 = draw.multiline_textbbox((0, 0), text, font=font)
    pad = max(2, round(font.size / 4) if hasattr(font, "size") else 2)
    draw.rectangle((0, 0, min(canvas.width, x1 - x0 + 2 * pad), y1 - y0 + 2 * pad), fill=(20, 20, 20))
    draw.multiline_text((pad - x0, pad - y0), text, fill=(255, 255, 255), font=font)
