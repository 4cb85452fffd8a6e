"""Videos with known answers: a virtual camera moved over labelled photos.

`make_clip` pans and zooms a 4:3 window across one photo (andrewmvd's CC0 photos and their Pascal
VOC boxes), with short full occlusions (a grey card held over a face for a few frames) and frame
drops (the camera path jumps), so that every labelled face has a known box and class in every
frame. `bench/studies/tracking_study.py` scores the tracker on such clips (`track_score`); the tests
build tiny ones.

Ground truth per frame: the faces in view, each with its person id (its index in the photo), box
and class; faces under the card are left out, and faces too small or mostly outside the frame are
marked `ignore` (neither a miss when not found nor a false alarm when found, as MOTChallenge does
with its distractors).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from maskdetect.labels import CLASSES

Box = tuple[float, float, float, float]

# The class of a face a by-eye audit found that the photo's annotations miss (bench/audits/): a
# person in the truth, counted apart from the classes of CLASSES.
NOT_LABELLED = "not labelled"


@dataclass(frozen=True)
class ClipSettings:
    """The virtual camera.

    Attributes:
        width, height: the clip's frame size.
        frames: frames in the clip.
        fps: its frame rate.
        start_scale: the window's first width, as a share of the widest 4:3 window the photo holds
            (drawn uniformly from this range).
        zoom: the window's last width over its first (drawn from this range; under 1 zooms in).
        occlusions: grey cards held over a face, each for `occlusion_frames` frames (drawn).
        drops: frame drops: the camera path skips `drop_frames` frames (drawn) at this many points.
        min_face: faces narrower than this in the frame are marked ignore.
        min_photo_face: faces narrower than this in the photo are marked ignore too: a face the
            camera enlarges from a few pixels is a blur no detector should be asked to find.
        min_inside: faces with less than this share of their box in the frame are marked ignore.
    """

    width: int = 640
    height: int = 480
    frames: int = 75
    fps: float = 25.0
    start_scale: tuple[float, float] = (0.7, 1.0)
    zoom: tuple[float, float] = (0.8, 1.2)
    occlusions: int = 1
    occlusion_frames: tuple[int, int] = (3, 8)
    drops: int = 2
    drop_frames: tuple[int, int] = (2, 4)
    min_face: float = 32.0
    min_photo_face: float = 32.0
    min_inside: float = 0.8


@dataclass(frozen=True)
class TruthFace:
    """One labelled face in one frame of a clip."""

    person: int
    box: Box
    label: str
    ignore: bool = False


@dataclass
class SyntheticClip:
    """A clip's frames (RGB arrays) and, for each, the faces in view and the camera's window
    (x0, y0, x1, y1 in the photo's pixels)."""

    photo: str
    fps: float
    frames: list[np.ndarray] = field(repr=False)
    truth: list[list[TruthFace]] = field(repr=False)
    windows: list[Box] = field(default_factory=list, repr=False)

    def without_unlabelled(self) -> SyntheticClip:
        """The same clip with the truth of the annotations alone (no `NOT_LABELLED` faces)."""
        truth = [[f for f in faces if f.label != NOT_LABELLED] for faces in self.truth]
        return SyntheticClip(self.photo, self.fps, self.frames, truth, self.windows)

    def persons(self, min_frames: int = 1) -> dict[int, str]:
        """The people the truth counts, person id to class: faces seen (not ignored) in at least
        `min_frames` frames."""
        seen: dict[int, list[str]] = {}
        for faces in self.truth:
            for face in faces:
                if not face.ignore:
                    seen.setdefault(face.person, []).append(face.label)
        return {person: labels[0] for person, labels in seen.items() if len(labels) >= min_frames}

    def people(self, min_frames: int = 1) -> dict[str, int]:
        """People by class: faces seen (not ignored) in at least `min_frames` frames; with
        `NOT_LABELLED` too when the truth holds faces of that class."""
        counts = dict.fromkeys(CLASSES, 0)
        if any(f.label == NOT_LABELLED for faces in self.truth for f in faces):
            counts[NOT_LABELLED] = 0
        for label in self.persons(min_frames).values():
            counts[label] += 1
        return counts

    def write(self, path: str | os.PathLike) -> Path:
        """Write the clip as an mp4 (OpenCV's mp4v, which OpenCV reads back) and its truth beside it
        (`path` with `.truth.json`: per frame, the faces' person, box, label and ignore)."""
        import cv2

        from maskdetect.fileio import atomic_write_text

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        height, width = self.frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
        for frame in self.frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        truth = {"photo": self.photo, "fps": self.fps,
                 "frames": [[asdict(face) for face in faces] for faces in self.truth]}
        atomic_write_text(path.with_suffix(".truth.json"), json.dumps(truth) + "\n")
        return path


def make_clip(photo: Image.Image, faces: Sequence[tuple[Box, str]], settings: ClipSettings | None = None,
              seed: int = 0, name: str = "", unlabelled: Sequence[Box] = ()) -> SyntheticClip:
    """Move a virtual camera over one labelled photo.

    Args:
        photo: the photo (RGB).
        faces: its faces, (x0, y0, x1, y1) pixels and a class of `CLASSES`.
        settings: the camera.
        seed: draws the path, the occlusions and the drops.
        name: what the clip is called (the photo's name).
        unlabelled: faces the annotations miss (a by-eye audit's), added to the truth as
            `NOT_LABELLED` people after the labelled ones; the frames are the same with or without
            them (the camera aims, and the card falls, at labelled faces only; a card hides them too).

    Raises:
        ValueError: a face label not among `CLASSES`.

    >>> clip = make_clip(Image.new("RGB", (400, 300)), [((180, 120, 220, 170), "covered")],
    ...                  ClipSettings(width=160, height=120, frames=6, occlusions=0, drops=0, min_face=8))
    >>> len(clip.frames), clip.frames[0].shape, clip.people()
    (6, (120, 160, 3), {'covered': 1, 'incorrect': 0, 'uncovered': 0})
    """
    settings = settings or ClipSettings()
    for _, label in faces:
        if label not in CLASSES:
            raise ValueError(f"face label {label!r} is not one of {CLASSES}")
    rng = random.Random(seed)
    photo = photo.convert("RGB")
    middle = float(np.mean([(box[1] + box[3]) / 2 for box, _ in faces])) if faces else photo.height / 2
    windows = _camera_path(photo.size, middle, settings, rng)
    everyone = list(faces) + [(tuple(box), NOT_LABELLED) for box in unlabelled]
    frames, truth = [], []
    for window in windows:
        frame = photo.resize((settings.width, settings.height), Image.BILINEAR, box=window)
        frames.append(frame)
        truth.append([_in_frame(i, box, label, window, settings) for i, (box, label) in enumerate(everyone)])
    truth = [[f for f in faces_ if f is not None] for faces_ in truth]
    _occlude(frames, truth, settings, rng)
    return SyntheticClip(name, settings.fps, [np.asarray(f) for f in frames], truth, windows)


def _camera_path(size: tuple[int, int], middle: float, settings: ClipSettings,
                 rng: random.Random) -> list[Box]:
    # Windows of the clip's aspect: the width goes from w0 to w0 * zoom, the centre from one side of
    # the photo to the other at the height of the faces (`middle`), drifting a little; at `drops`
    # points the path jumps by a few frames.
    photo_w, photo_h = size
    aspect = settings.width / settings.height
    widest = min(photo_w, photo_h * aspect)
    w0 = widest * rng.uniform(*settings.start_scale)
    w1 = min(widest, w0 * rng.uniform(*settings.zoom))
    steps = [1] * (settings.frames - 1)
    for i in rng.sample(range(len(steps)), min(settings.drops, len(steps))):
        steps[i] += rng.randint(*settings.drop_frames)
    times = np.concatenate([[0.0], np.cumsum(steps)]) / max(1, sum(steps))
    left_to_right = rng.random() < 0.5
    start = (rng.uniform(0.0, 0.25), middle + rng.uniform(-0.1, 0.1) * photo_h)
    end = (rng.uniform(0.75, 1.0), middle + rng.uniform(-0.1, 0.1) * photo_h)
    if not left_to_right:
        start, end = end, start
    windows = []
    for t in times:
        w = w0 + (w1 - w0) * t
        h = w / aspect
        fx, cy = start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t
        x0, y0 = fx * (photo_w - w), min(max(0.0, cy - h / 2), photo_h - h)  # inside the photo
        windows.append((x0, y0, x0 + w, y0 + h))
    return windows


def _in_frame(person: int, box: Box, label: str, window: Box, settings: ClipSettings) -> TruthFace | None:
    scale = settings.width / (window[2] - window[0])
    x0, y0, x1, y1 = ((box[0] - window[0]) * scale, (box[1] - window[1]) * scale,
                      (box[2] - window[0]) * scale, (box[3] - window[1]) * scale)
    cx0, cy0 = max(0.0, x0), max(0.0, y0)
    cx1, cy1 = min(float(settings.width), x1), min(float(settings.height), y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    inside = (cx1 - cx0) * (cy1 - cy0) / max(1e-9, (x1 - x0) * (y1 - y0))
    ignore = bool(inside < settings.min_inside or (x1 - x0) < settings.min_face
                  or (box[2] - box[0]) < settings.min_photo_face)
    clipped = tuple(round(float(v), 2) for v in (cx0, cy0, cx1, cy1))
    return TruthFace(person, clipped, label, ignore)


def _occlude(frames: list[Image.Image], truth: list[list[TruthFace]], settings: ClipSettings,
             rng: random.Random) -> None:
    # A grey card over one counted face for a few frames (it follows the face); the faces it hides
    # (more than a third of their box) leave the truth for those frames.
    for _ in range(settings.occlusions):
        start = rng.randrange(len(frames))
        shown = [f for f in truth[start] if not f.ignore and f.label != NOT_LABELLED]
        if not shown:
            continue
        person = rng.choice(shown).person
        length = rng.randint(*settings.occlusion_frames)
        for index in range(start, min(len(frames), start + length)):
            target = next((f for f in truth[index] if f.person == person), None)
            if target is None:
                break
            x0, y0, x1, y1 = target.box
            pad_x, pad_y = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
            card = (x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y)
            ImageDraw.Draw(frames[index]).rectangle(card, fill=(128, 128, 128))
            truth[index] = [f for f in truth[index] if _covered(f.box, card) <= 1 / 3]


def _covered(box: Box, card: Box) -> float:
    w = min(box[2], card[2]) - max(box[0], card[0])
    h = min(box[3], card[3]) - max(box[1], card[1])
    area = (box[2] - box[0]) * (box[3] - box[1])
    return max(0.0, w) * max(0.0, h) / area if area > 0 else 0.0


def clips_from_voc(voc_dir: str | os.PathLike, count: int, settings: ClipSettings | None = None,
                   seed: int = 0, unlabelled: Mapping[str, Sequence[Box]] | None = None,
                   exclude: Iterable[str] = (), only: Iterable[str] | None = None) -> Iterator[SyntheticClip]:
    """`count` clips, each over one photo of a Pascal VOC set (e.g. andrewmvd-face-mask).

    Photos are drawn by `seed` in turn for each class: the k-th clip's photo has a face of
    `CLASSES[k % 3]` at least `settings.min_photo_face` px wide (any usable photo once a class has
    none left), so that rare classes (incorrectly worn masks) are seen too. `unlabelled` gives, by
    photo name, faces its annotations miss (`make_clip`'s `unlabelled`). `exclude`: photo names (or
    stems) never to film, e.g. those a face verifier was fitted on (`voc_items`' `exclude`); `only`,
    when given, the only ones to film (e.g. the photos a second team annotated too).

    Raises:
        FileNotFoundError: no usable annotations in `voc_dir`.
    """
    from maskdetect.data.voc_set import voc_items

    settings = settings or ClipSettings()
    usable = [(path, faces) for path, faces in voc_items(voc_dir, exclude, only=only)
              if any(box[2] - box[0] >= settings.min_photo_face for box, _ in faces)]
    rng = random.Random(seed)
    order = list(range(len(usable)))
    rng.shuffle(order)
    chosen: list[int] = []
    for k in range(min(count, len(usable))):
        wanted = CLASSES[k % len(CLASSES)]
        left = [i for i in order if i not in chosen]
        fits = [i for i in left if any(label == wanted and box[2] - box[0] >= settings.min_photo_face
                                       for box, label in usable[i][1])]
        chosen.append((fits or left)[0])
    for number, index in enumerate(chosen):
        path, faces = usable[index]
        with Image.open(path) as photo:
            yield make_clip(photo, faces, settings, seed=seed * 1000 + number, name=Path(path).name,
                            unlabelled=(unlabelled or {}).get(Path(path).name, ()))


@dataclass
class AnnotatedTrack:
    """One face of a second annotation, followed without fault along a clip: a track as
    `track_score.score_clip` scores one (`ScoredTrack`), its verdict the annotation's label."""

    track_id: int
    frames_seen: int
    verdict: str
    fps: float

    def counted(self, options: Any) -> bool:
        return self.frames_seen >= options.frames_to_count(self.fps)

    def flips(self) -> tuple[int, int]:
        return 0, 0


def annotation_along(clip: SyntheticClip, faces: Sequence[tuple[Box, str]], settings: ClipSettings
                     ) -> tuple[list[list[tuple[int, Box]]], list[AnnotatedTrack]]:
    """A second annotation of a clip's photo as a tracker that never errs would give it: per frame,
    each face's (track id, box in the frame), and its tracks; to score as any tracker's output.

    `faces` are in the photo's pixels; `settings` are the clip's. Faces narrower than
    `settings.min_photo_face` are left out, as the truth ignores the clip's own: what the second team
    counts by the truth's rule.

    >>> settings = ClipSettings(width=160, height=120, frames=6, occlusions=0, drops=0, min_face=8)
    >>> clip = make_clip(Image.new("RGB", (400, 300)), [((180, 120, 220, 170), "covered")], settings)
    >>> outputs, tracks = annotation_along(clip, [((182, 120, 222, 168), "incorrect")], settings)
    >>> len(outputs), [(t.track_id, t.frames_seen, t.verdict) for t in tracks]
    (6, [(1, 6, 'incorrect')])
    """
    kept = [(box, label) for box, label in faces if box[2] - box[0] >= settings.min_photo_face]
    outputs: list[list[tuple[int, Box]]] = []
    seen = [0] * len(kept)
    for window in clip.windows:
        here = []
        for number, (box, label) in enumerate(kept):
            face = _in_frame(number, box, label, window, settings)
            if face is not None:
                here.append((number + 1, face.box))
                seen[number] += 1
        outputs.append(here)
    tracks = [AnnotatedTrack(number + 1, count, label, clip.fps)
              for number, ((_, label), count) in enumerate(zip(kept, seen, strict=True)) if count]
    return outputs, tracks


def unlabelled_faces(audit: str | os.PathLike) -> dict[str, list[Box]]:
    """The faces a by-eye audit found that a photo set's annotations miss, by photo name.

    Reads a tab-separated audit (lines starting with # are comments; the first other line names
    the columns, among them photo, box as "x0 y0 x1 y1" in the photo's pixels, and verdict) and
    keeps the lines whose verdict is "an unlabelled real face" (e.g.
    bench/audits/tracking-clips-seed0.tsv), for `clips_from_voc`'s `unlabelled`.

    Raises:
        ValueError: a missing column or a box that is not four numbers (names the file and line).
    """
    path = Path(audit)
    text = path.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    if not lines:
        raise ValueError(f"{path}: no header line")
    header = lines[0].split("\t")
    missing = {"photo", "box", "verdict"} - set(header)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    faces: dict[str, list[Box]] = {}
    for number, line in enumerate(lines[1:], start=2):
        row = dict(zip(header, line.split("\t"), strict=False))
        if row.get("verdict") != "an unlabelled real face":
            continue
        try:
            x0, y0, x1, y1 = (float(v) for v in row.get("box", "").split())
        except ValueError:
            raise ValueError(f"{path}: line {number} box {row.get('box')!r} is not four numbers") from None
        faces.setdefault(row["photo"], []).append((x0, y0, x1, y1))
    return faces
