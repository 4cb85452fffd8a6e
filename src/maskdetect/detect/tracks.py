"""People, not frames: face tracks across a video, each with one verdict made from all its frames.

`FaceTracker.update` takes one frame's `ImageResult` (the faces `Predictor.predict` found) and
gives every face a track id with ByteTrack (the Roboflow `trackers` package: Kalman-predicted boxes
matched by IoU, a track kept through `TrackOptions.lost_seconds` of missed detections or
occlusion). Each track keeps two labels:

- the verdict: the class whose probability, averaged over all the track's frames weighted by face
  size and detection score (and little where the frame's edge cuts the face), is highest: one
  answer per person;
- the running label shown on the video: over a track's first half-life the verdict so far, then a
  decayed average of the recent frames with hysteresis, so a half-turned face does not flicker
  between classes from frame to frame, while a mask pulled down mid-clip still changes it within
  about half a second, recorded as an event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from maskdetect.faces.nms import iou_matrix
from maskdetect.labels import CLASSES
from maskdetect.results import FaceResult, ImageResult


@dataclass(frozen=True)
class TrackOptions:
    """How faces become tracks and tracks become people.

    Attributes:
        lost_seconds: how long a track waits for its face to come back (occlusion, missed
            detections) before it ends.
        min_iou: the least overlap between a track's predicted box and a face to match them.
        min_seconds: how long a track must be seen to count as a person (shorter ones are written,
            with counted false: a false alarm on a few frames is no person); at least one frame.
        half_life_seconds: the running label's memory: frames this long ago weigh half.
        switch_margin: the running label changes only when another class leads it by this much.
        full_weight_px: faces this wide and more weigh fully in the verdict; smaller ones in
            proportion to their width.
        edge_weight: a face whose box touches the frame's edge weighs this much (times the above)
            in the verdict and the running label: the part out of view may hold the mask (a mask
            pulled down under the chin reads as no mask once the chin is cut off).
    """

    lost_seconds: float = 1.0
    min_iou: float = 0.1
    min_seconds: float = 0.4
    half_life_seconds: float = 0.4
    switch_margin: float = 0.15
    full_weight_px: float = 96.0
    edge_weight: float = 0.1

    def __post_init__(self) -> None:
        for name in ("lost_seconds", "half_life_seconds", "full_weight_px"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrackOptions.{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.edge_weight <= 1:
            raise ValueError(f"TrackOptions.edge_weight must lie in (0, 1], got {self.edge_weight}")
        if not 0 <= self.min_iou < 1 or not 0 <= self.switch_margin < 1:
            raise ValueError(f"min_iou and switch_margin must lie in [0, 1), got {self.min_iou}, "
                             f"{self.switch_margin}")
        if self.min_seconds < 0:
            raise ValueError(f"TrackOptions.min_seconds must not be negative, got {self.min_seconds}")

    def frames_to_count(self, fps: float) -> int:
        """Frames a track needs to count as a person at this frame rate.

        >>> TrackOptions(min_seconds=0.4).frames_to_count(25.0), TrackOptions().frames_to_count(2.0)
        (10, 1)
        """
        return max(1, math.ceil(self.min_seconds * fps - 1e-9))


@dataclass(frozen=True)
class TrackedFace:
    """One face of one frame with its track: what the annotated video draws.

    Attributes:
        face: the frame's own `FaceResult` (its per-frame label and probabilities).
        track_id: the person's id (from 1), or -1 when the tracker has not matched the face. A
            track is confirmed on its second frame: its first is -1 here, yet counts in the track.
        label: the track's running label (the face's own label when untracked).
    """

    face: FaceResult
    track_id: int
    label: str

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.face.box

    @property
    def score(self) -> float:
        return self.face.score

    @property
    def caption(self) -> str:
        return self.label if self.track_id < 0 else f"#{self.track_id} {self.label}"

    @property
    def tag(self) -> str:
        """The caption's short form, for a frame too crowded for whole captions: the track id."""
        return "" if self.track_id < 0 else f"#{self.track_id}"


@dataclass
class Track:
    """One person: where and when the face was seen, and what the frames together say.

    Attributes:
        track_id: the id drawn on the video and written in each frame's faces.
        fps: the video's frame rate.
        first_frame, last_frame: the frames it was first and last seen in.
        first_time, last_time: the same in seconds from the start.
        frames_seen: frames in which a face was matched to it.
        probabilities: per class, the average over its frames weighted by size and detection score.
        verdict: the most probable class of `probabilities`.
        label: the running label at its last frame.
        events: changes of the running label: {"frame", "time", "from", "to"}.
        labels_per_frame: the running label of each frame seen, (frame, label).
        raw_labels: each frame's own label, (frame, label).
        best_frame: the frame of its largest, surest face; `thumbnail` is that face (a crop at the
            frame's own size).
    """

    track_id: int
    first_frame: int
    first_time: float
    fps: float = 25.0
    last_frame: int = 0
    last_time: float = 0.0
    frames_seen: int = 0
    probabilities: dict[str, float] = field(default_factory=dict)
    verdict: str = ""
    label: str = ""
    events: list[dict] = field(default_factory=list)
    labels_per_frame: list[tuple[int, str]] = field(default_factory=list, repr=False)
    raw_labels: list[tuple[int, str]] = field(default_factory=list, repr=False)
    best_frame: int = 0
    thumbnail: Image.Image | None = field(default=None, repr=False)
    _sum: np.ndarray | None = field(default=None, repr=False)
    _recent: np.ndarray | None = field(default=None, repr=False)
    _best_weight: float = field(default=-1.0, repr=False)

    def counted(self, options: TrackOptions) -> bool:
        """Whether the track is long enough to be a person."""
        return self.frames_seen >= options.frames_to_count(self.fps)

    def flips(self) -> tuple[int, int]:
        """(changes of the running label, changes of the frames' own labels) along the track."""
        return _changes(s for _, s in self.labels_per_frame), _changes(r for _, r in self.raw_labels)

    def to_dict(self, options: TrackOptions) -> dict:
        """The track's JSON record (`<video>.tracks.jsonl`)."""
        return {
            "track_id": self.track_id, "verdict": self.verdict, "counted": self.counted(options),
            "first_frame": self.first_frame, "last_frame": self.last_frame,
            "first_time": round(self.first_time, 3), "last_time": round(self.last_time, 3),
            "frames_seen": self.frames_seen,
            "probabilities": {k: round(v, 5) for k, v in self.probabilities.items()},
            "events": self.events, "best_frame": self.best_frame,
        }


def _changes(labels) -> int:
    labels = list(labels)
    return sum(a != b for a, b in zip(labels, labels[1:], strict=False))


def bytetrack(fps: float, options: TrackOptions) -> object:
    """ByteTrack as `FaceTracker` uses it (chosen over SORT, OC-SORT and norfair by
    `bench/studies/tracking_study.py`; docs/benchmarks.md, "Videos: tracking and counting people").

    The face detector has already kept only the faces it trusts, so every face may start a track
    and take part in the first, high-confidence matching stage.
    """
    from trackers import ByteTrackTracker

    # lost_track_buffer counts 30 fps frames; the tracker scales it by frame_rate.
    return ByteTrackTracker(
        lost_track_buffer=max(1, round(options.lost_seconds * 30)), frame_rate=fps,
        track_activation_threshold=0.0, minimum_consecutive_frames=1,
        minimum_iou_threshold=options.min_iou, high_conf_det_threshold=0.0)


class FaceTracker:
    """Give each face of a video a track id and keep every track's verdict.

    Args:
        fps: the video's frame rate (frames are timed by their index / fps).
        options: tracking and labelling settings.
        classes: the classifier's class names, in its probability order.
        associate: what matches faces to tracks: any tracker of the `trackers` package (its
            `update(supervision.Detections)` gives each detection a `tracker_id`, -1 when
            untracked, and keeps its `data`); default `bytetrack(fps, options)`.

    >>> tracker = FaceTracker(fps=25.0)  # doctest: +SKIP
    >>> for index, result in enumerate(results):  # doctest: +SKIP
    ...     faces = tracker.update(result, index)
    >>> [(t.track_id, t.verdict) for t in tracker.tracks()]  # doctest: +SKIP
    [(1, 'covered'), (2, 'uncovered')]
    """

    def __init__(self, fps: float, options: TrackOptions | None = None,
                 classes: tuple[str, ...] = CLASSES, associate: object | None = None) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.options = options or TrackOptions()
        self.classes = tuple(classes)
        self._associate = associate if associate is not None else bytetrack(self.fps, self.options)
        self._tracks: dict[int, Track] = {}
        self._pending: list[tuple[FaceResult, int, Image.Image | None, tuple[int, int]]] = []
        self._decay = 0.5 ** (1.0 / (self.options.half_life_seconds * self.fps))
        self._settle = max(1, round(self.options.half_life_seconds * self.fps))

    def update(self, result: ImageResult, frame: int, image: Image.Image | None = None) -> list[TrackedFace]:
        """Match one frame's faces to tracks; returns them in the result's order.

        Args:
            result: the frame's faces.
            frame: the frame's index from the start of the video (frames are timed by it).
            image: the frame, to cut each track's thumbnail from (default `result.image`).
        """
        import supervision as sv

        faces = result.faces
        image = image if image is not None else result.image
        if faces:
            boxes = np.array([f.box for f in faces], np.float32)
            scores = np.array([f.detection_score for f in faces], np.float32)
            detections = sv.Detections(xyxy=boxes, confidence=scores, data={"index": np.arange(len(faces))})
        else:
            detections = sv.Detections.empty()
        tracked = self._associate.update(detections)
        ids = [-1] * len(faces)
        if len(tracked):
            # ByteTrack confirms a track on its second frame (its first gets -1) and counts from 0.
            for index, track_id in zip(tracked.data["index"], tracked.tracker_id, strict=True):
                ids[int(index)] = int(track_id) + 1 if track_id >= 0 else -1
        out, pending = [], []
        size = (result.width, result.height)
        for face, track_id in zip(faces, ids, strict=True):
            if track_id >= 0 and track_id not in self._tracks:
                self._adopt(track_id, face.box)
            label = self._add(track_id, face, frame, image, size) if track_id >= 0 else face.label
            out.append(TrackedFace(face, track_id, label))
            if track_id < 0:
                pending.append((face, frame, image, size))
        self._pending = pending
        return out

    def _adopt(self, track_id: int, box: tuple[float, float, float, float]) -> None:
        # A track is confirmed on its second frame: its first frame's face (written untracked)
        # still counts towards it, the one of the last frame that overlaps its box most.
        if not self._pending:
            return
        overlap = iou_matrix(np.array([p[0].box for p in self._pending]), np.array([box]))[:, 0]
        if overlap.max() >= 0.3:
            self._add(track_id, *self._pending.pop(int(np.argmax(overlap))))

    def tracks(self) -> list[Track]:
        """Every track so far, by id."""
        return [self._tracks[k] for k in sorted(self._tracks)]

    def _add(self, track_id: int, face: FaceResult, frame: int, image: Image.Image | None,
             size: tuple[int, int]) -> str:
        time = frame / self.fps
        track = self._tracks.get(track_id)
        if track is None:
            track = self._tracks[track_id] = Track(track_id, frame, time, self.fps)
        p = np.array([face.probabilities.get(c, 0.0) for c in self.classes], np.float64)
        x0, y0, x1, y1 = face.box
        weight = max(face.detection_score, 1e-3) * min(1.0, (x1 - x0) / self.options.full_weight_px)
        if _touches_edge(face.box, *size):
            weight *= self.options.edge_weight
        track._sum = weight * p if track._sum is None else track._sum + weight * p
        probs = track._sum / track._sum.sum()
        track.probabilities = {c: float(v) for c, v in zip(self.classes, probs, strict=True)}
        track.verdict = self.classes[int(np.argmax(probs))]
        # The running label: frames decay by their distance in time (gaps count), weighted as above.
        decay = self._decay ** (frame - track.last_frame) if track._recent is not None else 0.0
        track._recent = weight * p + (decay * track._recent if track._recent is not None else 0.0)
        recent = track._recent / track._recent.sum()
        leader = self.classes[int(np.argmax(recent))]
        if track.frames_seen < self._settle:  # its first frames: the verdict so far, no events
            track.label = track.verdict
        elif leader != track.label and (
                recent[self.classes.index(leader)] - recent[self.classes.index(track.label)]
                > self.options.switch_margin):
            track.events.append({"frame": frame, "time": round(time, 3), "from": track.label, "to": leader})
            track.label = leader
        track.last_frame, track.last_time = frame, time
        track.frames_seen += 1
        track.labels_per_frame.append((frame, track.label))
        track.raw_labels.append((frame, face.label))
        if image is not None and weight > track._best_weight:
            track._best_weight, track.best_frame = weight, frame
            track.thumbnail = _thumbnail(image, face.box)
        return track.label


def _touches_edge(box: tuple[float, float, float, float], width: int, height: int) -> bool:
    """Whether a box (clipped to the frame, as the detectors give it) reaches the frame's edge.

    >>> _touches_edge((0, 10, 30, 40), 320, 240), _touches_edge((5, 10, 30, 40), 320, 240)
    (True, False)
    """
    x0, y0, x1, y1 = box
    return bool(width and height) and (min(x0, y0) <= 1 or x1 >= width - 1 or y1 >= height - 1)


def _thumbnail(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    # The face with a fifth of its size around it, at full size: a crop is cheap, a resize on every
    # better frame is not (`timeline.write_track_files` shrinks the last one).
    x0, y0, x1, y1 = box
    pad_x, pad_y = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
    crop = image.crop((max(0, round(x0 - pad_x)), max(0, round(y0 - pad_y)),
                       min(image.width, round(x1 + pad_x)), min(image.height, round(y1 + pad_y))))
    return crop if crop.mode == "RGB" else crop.convert("RGB")
