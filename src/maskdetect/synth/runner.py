"""`maskdetect synth`: draw masks on bare faces and write them in MaskedFace-Net's layout.

For every usable face: run the face mesh, cut an output image framed like an FFHQ-aligned head shot
(the face box at `ALIGNED_HEADSHOT_BOX` fractions of the image, padded with the crop fill colour), and
draw one mask in each asked-for placement. Files go to `CMFD/<thousands>/<id>_Mask.jpg` and
`IMFD/<thousands>/<id>_Mask_<part>.jpg`, so the MaskedFace-Net reader takes them with no new code and
`aligned_headshot_box(w, h)` gives back the face box. `synth_manifest.csv` records, per file, the
source photo, the face box (in the output image) and the label; `synth_summary.json` the counts of
faces drawn and skipped by reason; `contact_sheet.png` a look at the first faces.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from maskdetect.data.folder import file_group
from maskdetect.data.voc import photo_group
from maskdetect.faces import landmarks as lm
from maskdetect.faces.crop import ALIGNED_HEADSHOT_BOX, Box, CropPolicy
from maskdetect.fileio import atomic_write_bytes, atomic_write_text
from maskdetect.images import ImageError, open_image
from maskdetect.labels import MASKEDFACE_SUBTYPES
from maskdetect.synth.masks import KINDS, random_style
from maskdetect.synth.placement import KNOWN_PLACEMENTS, PLACEMENTS
from maskdetect.synth.render import draw_mask
from maskdetect.synth.sheet import contact_sheet
from maskdetect.synth.sources import SourceFace, iter_source_faces

log = logging.getLogger(__name__)

MANIFEST_NAME = "synth_manifest.csv"
SUMMARY_NAME = "synth_summary.json"
SHEET_NAME = "contact_sheet.png"
MANIFEST_FIELDS = (
    "file", "label", "subtype", "suffix", "synth_id", "source_photo", "source_group", "source_face",
    "box_x0", "box_y0", "box_x1", "box_y1", "source_box", "kind", "pattern", "colour", "mesh_score",
)


@dataclass(frozen=True)
class SynthOptions:
    """What `synthesize` draws and which faces it refuses.

    Attributes:
        placements: MaskedFace-Net suffixes to draw on each face.
        kinds: mask kinds to pick from.
        min_face: faces whose box is smaller than this (longer side, pixels) are skipped.
        min_score: faces whose mesh score is lower are skipped.
        max_yaw: faces turned further than this many degrees (see `landmarks.yaw_degrees`) are
            skipped: the mesh of a face in near profile misplaces the far side.
        seed: the random seed; the same input and seed give the same images.
        limit: stop after this many faces drawn (None: all).
        quality: JPEG quality of the output images.
        sheet_faces: faces shown on the contact sheet.
    """

    placements: tuple[str, ...] = PLACEMENTS
    kinds: tuple[str, ...] = KINDS
    min_face: int = 40
    min_score: float = 0.75
    max_yaw: float = 35.0
    seed: int = 0
    limit: int | None = None
    quality: int = 92
    sheet_faces: int = 24

    def __post_init__(self) -> None:
        for name in self.placements:
            if name not in KNOWN_PLACEMENTS:
                raise ValueError(f"unknown placement {name!r}; known: {', '.join(KNOWN_PLACEMENTS)}")
        for kind in self.kinds:
            if kind not in KINDS:
                raise ValueError(f"unknown mask kind {kind!r}; known: {', '.join(KINDS)}")
        if not self.placements or not self.kinds:
            raise ValueError("synth needs at least one placement and one mask kind")
        if self.min_face < 1 or not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"bad min_face {self.min_face} or min_score {self.min_score}")


@dataclass
class SynthSummary:
    """What a run did: faces seen, drawn, skipped (by reason), files written."""

    faces_seen: int = 0
    faces_drawn: int = 0
    images_written: int = 0
    skipped: Counter = field(default_factory=Counter)
    passed_over: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["skipped"] = dict(self.skipped)
        return out


def headshot_frame(box: Box) -> Box:
    """The output image's rectangle (photo pixels) that puts `box` at ALIGNED_HEADSHOT_BOX fractions.

    >>> tuple(round(v, 1) for v in headshot_frame((100, 100, 150, 156)))
    (79.2, 68.2, 171.1, 162.5)
    """
    fx0, fy0, fx1, fy1 = ALIGNED_HEADSHOT_BOX
    x0, y0, x1, y1 = box
    width, height = (x1 - x0) / (fx1 - fx0), (y1 - y0) / (fy1 - fy0)
    left, top = x0 - fx0 * width, y0 - fy0 * height
    return (left, top, left + width, top + height)


def cut_rect(
    image: Image.Image, rect: Box, fill: tuple[int, int, int]
) -> tuple[Image.Image, tuple[int, int]]:
    """Cut a rectangle (rounded to whole pixels) out of a photo, padding outside it with `fill`.

    Returns:
        (crop, (left, top)): the crop and its top-left corner in photo pixels.
    """
    left, top = round(rect[0]), round(rect[1])
    width, height = max(1, round(rect[2] - rect[0])), max(1, round(rect[3] - rect[1]))
    out = Image.new("RGB", (width, height), fill)
    src = (max(0, left), max(0, top), min(image.width, left + width), min(image.height, top + height))
    if src[2] > src[0] and src[3] > src[1]:
        out.paste(image.crop(src), (src[0] - left, src[1] - top))
    return out, (left, top)


def mesh_face_box(points: np.ndarray) -> Box:
    """A person-style face box from a mesh: the outline's width, mid-forehead to the chin.

    >>> pts = np.zeros((468, 3)); pts[list(lm.FACE_OVAL), 0] = np.linspace(10, 50, 36)
    >>> pts[10, 1], pts[168, 1], pts[152, 1] = 0, 20, 60
    >>> mesh_face_box(pts)
    (10.0, 10.0, 50.0, 60.0)
    """
    oval = points[list(lm.FACE_OVAL), :2]
    top = (points[lm.FOREHEAD_TOP, 1] + points[168, 1]) / 2
    return (float(oval[:, 0].min()), float(top), float(oval[:, 0].max()), float(points[lm.CHIN_BOTTOM, 1]))


def _check_face(res: lm.MeshResult, box: Box, opts: SynthOptions) -> str | None:
    """Why a face cannot take a mask, or None if it can."""
    if res.score < opts.min_score:
        return "low_mesh_score"
    if abs(lm.yaw_degrees(res)) > opts.max_yaw:
        return "profile"
    nx, ny = res.xy(lm.NOSE_TIP)
    x0, y0, x1, y1 = box
    if not (x0 <= nx <= x1 and y0 <= ny <= y1):
        return "mesh_off_box"
    return None


class Synthesizer:
    """Draws masks on faces and writes MaskedFace-Net-style files; one per run (it numbers faces).

    >>> Synthesizer("/tmp/never-written", SynthOptions(placements=("Nose",)))
    Traceback (most recent call last):
    ...
    ValueError: unknown placement 'Nose'; known: Mask, Mask_Mouth_Chin, Mask_Nose_Mouth, Mask_Chin, Mask_Neck
    """

    def __init__(
        self, out_dir: str | Path, options: SynthOptions | None = None, mesh: lm.FaceMesh | None = None
    ) -> None:
        self.out_dir = Path(out_dir)
        self.options = options or SynthOptions()
        self.mesh = mesh or lm.FaceMesh()
        self.fill = CropPolicy().fill
        self.summary = SynthSummary()
        self.source_root: Path | None = None  # source_photo is written relative to this when set
        self.rows: list[dict] = []
        self.sheet_tiles: list[tuple[Image.Image, str]] = []

    def draw_face(self, photo: Image.Image, face: SourceFace) -> None:
        """Draw every placement on one face (or count why not) and write the files."""
        opts = self.options
        self.summary.faces_seen += 1
        box = face.box
        if box is None:  # a folder face: find it with the mesh on the whole image first
            first = self.mesh.landmarks_in_box(photo, (0, 0, photo.width, photo.height), scale=1.0)
            if first.score < opts.min_score:
                self.summary.skipped["low_mesh_score"] += 1
                return
            box = mesh_face_box(first.points)
        if max(box[2] - box[0], box[3] - box[1]) < opts.min_face:
            self.summary.skipped["too_small"] += 1
            return
        res = self.mesh.landmarks_in_box(photo, box)
        reason = _check_face(res, box, opts)
        if reason:
            self.summary.skipped[reason] += 1
            return
        frame = headshot_frame(box)
        crop, (left, top) = cut_rect(photo, frame, self.fill)
        points = res.points[:, :2] - np.array([left, top], dtype=np.float32)
        out_box = tuple(
            round(float(v), 2) for v in (box[0] - left, box[1] - top, box[2] - left, box[3] - top)
        )
        synth_id = self.summary.faces_drawn
        rng = np.random.default_rng([opts.seed, synth_id])
        drawn = []
        for placement in opts.placements:
            style = random_style(rng, opts.kinds)
            try:
                drawn.append(draw_mask(crop, points, placement, style, rng))
            except ValueError as err:
                log.warning("%s face %d: %s", face.photo, face.index, err)
                self.summary.skipped["draw_failed"] += 1
                return
        self.summary.faces_drawn += 1
        for result in drawn:
            self._write(result, synth_id, face, out_box, res.score)
        if len(self.sheet_tiles) < opts.sheet_faces * len(opts.placements):
            self.sheet_tiles.extend((d.image, d.placement) for d in drawn)

    def _write(self, drawn, synth_id: int, face: SourceFace, out_box: tuple, score: float) -> None:
        label, subtype = MASKEDFACE_SUBTYPES[drawn.placement]
        part = "CMFD" if drawn.placement == "Mask" else "IMFD"
        rel = Path(part) / f"{synth_id // 1000 * 1000:05d}" / f"{synth_id:05d}_{drawn.placement}.jpg"
        buffer = io.BytesIO()
        drawn.image.save(buffer, "JPEG", quality=self.options.quality)
        (self.out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.out_dir / rel, buffer.getvalue())
        self.summary.images_written += 1
        self.rows.append({
            "file": rel.as_posix(), "label": label, "subtype": subtype, "suffix": drawn.placement,
            "synth_id": f"{synth_id:05d}", "source_photo": self._source_name(face.photo),
            "source_group": self._source_group(face),
            "source_face": face.index,
            "box_x0": out_box[0], "box_y0": out_box[1], "box_x1": out_box[2], "box_y1": out_box[3],
            "source_box": " ".join(f"{v:g}" for v in face.box) if face.box else "",
            "kind": drawn.style.kind, "pattern": drawn.style.pattern,
            "colour": "#{:02x}{:02x}{:02x}".format(*drawn.style.colour), "mesh_score": round(score, 4),
        })

    def _source_group(self, face: SourceFace) -> str:
        # The split group of the source face, so a drawn mask lands in the same split as its photo.
        if self.source_root is None:
            return ""
        if face.box is None:
            return file_group(self.source_root, face.photo)
        return photo_group(self.source_root.resolve().name, face.photo)

    def _source_name(self, photo: Path) -> str:
        if self.source_root is not None:
            try:
                return photo.relative_to(self.source_root).as_posix()
            except ValueError:
                pass
        return str(photo)

    def finish(self) -> SynthSummary:
        """Write the manifest, the summary and the contact sheet."""
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out_dir / MANIFEST_NAME, text.getvalue())
        atomic_write_text(self.out_dir / SUMMARY_NAME, json.dumps(self.summary.to_dict(), indent=2) + "\n")
        if self.sheet_tiles:
            sheet = contact_sheet(self.sheet_tiles, columns=len(self.options.placements) * 2)
            buffer = io.BytesIO()
            sheet.save(buffer, "PNG")
            atomic_write_bytes(self.out_dir / SHEET_NAME, buffer.getvalue())
        return self.summary


def synthesize(
    source: str | Path, out_dir: str | Path, options: SynthOptions | None = None, overwrite: bool = False
) -> SynthSummary:
    """Draw masks on every usable bare face under `source`; write them under `out_dir`.

    Args:
        source: a Pascal VOC photo set (its uncovered faces are used) or a folder of face images.
        out_dir: where CMFD/, IMFD/, the manifest, the summary and the contact sheet go.
        options: see `SynthOptions`.
        overwrite: allow writing into a folder that already holds a synth manifest.

    Returns:
        The run's `SynthSummary` (also written to synth_summary.json).

    Raises:
        FileNotFoundError: `source` is not a folder.
        FileExistsError: `out_dir` holds an earlier run and `overwrite` is False.

    >>> synthesize("/nonexistent", "/tmp/x")
    Traceback (most recent call last):
    ...
    FileNotFoundError: synth input is not a folder: /nonexistent
    """
    out_dir = Path(out_dir)
    if not Path(source).is_dir():
        raise FileNotFoundError(f"synth input is not a folder: {source}")
    if (out_dir / MANIFEST_NAME).exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a synth run ({MANIFEST_NAME}); pass --overwrite")
    synth = Synthesizer(out_dir, options)
    synth.source_root = Path(source)
    passed_over: dict[str, int] = {}
    photo_path, photo = None, None
    for face in iter_source_faces(source, passed_over):
        if synth.options.limit is not None and synth.summary.faces_drawn >= synth.options.limit:
            break
        if face.photo != photo_path:
            photo_path = face.photo
            try:
                photo = open_image(face.photo)
            except ImageError as err:
                log.warning("%s", err)
                photo = None
        if photo is None:
            synth.summary.faces_seen += 1
            synth.summary.skipped["unreadable_image"] += 1
            continue
        synth.draw_face(photo, face)
    synth.summary.passed_over = passed_over
    return synth.finish()
