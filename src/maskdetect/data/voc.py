"""Pascal VOC photo sets: ``annotations/*.xml`` beside ``images/`` or ``JPEGImages/``; one row per box.

Each face is a crop spec (the photo plus its box) cut later by `maskdetect.faces.crop.crop_face`, the
function inference uses too. The group is the photo. Boxes are clamped to the photo; boxes smaller
than `min_face` pixels (shorter side) are skipped and counted; degenerate boxes are reported.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from maskdetect.data.manifest import ManifestRow, file_sha256, header_size, require_dir
from maskdetect.data.voc_xml import (
    IMAGE_FOLDERS,
    RawBox,
    VocObject,
    annotation_folder,
    image_folder,
    image_of,
    index_images,
    read_annotation,
)
from maskdetect.labels import normalise_label

log = logging.getLogger(__name__)

SOURCE = "voc"
DEFAULT_MIN_FACE = 16


@dataclass
class VocReport:
    """What scanning one VOC set found, besides the rows."""

    dataset: str = ""
    photos: int = 0
    boxes: int = 0
    too_small: int = 0
    clamped: int = 0
    degenerate: list[str] = field(default_factory=list)
    unknown_labels: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.dataset}: {self.photos} photos, {self.boxes} boxes kept, {self.too_small} too small, "
            f"{self.clamped} clamped, {len(self.degenerate)} degenerate, "
            f"{sum(self.unknown_labels.values())} unknown labels, {len(self.problems)} unreadable"
        )


def photo_group(dataset: str, image_path: Path) -> str:
    """The group of every face of one photo of a VOC set (also used for masks drawn on them).

    >>> photo_group("andrewmvd", Path("images/maksssksksss1.jpg"))
    'andrewmvd/maksssksksss1'
    """
    return f"{dataset}/{image_path.stem}"


def scan_voc(
    root: str | os.PathLike, min_face: int = DEFAULT_MIN_FACE
) -> tuple[list[ManifestRow], VocReport]:
    """Rows for every face box of a VOC set, and a report of what was skipped.

    Args:
        root: the folder holding ``annotations/`` and ``images/`` (or ``JPEGImages/``).
        min_face: skip boxes whose shorter side (after clamping) is below this many pixels.

    Raises:
        FileNotFoundError: `root`, its annotations folder or its images folder is missing.
        ValueError: `min_face` is negative.

    >>> import tempfile
    >>> scan_voc(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    FileNotFoundError: VOC annotations folder not found: ...
    """
    if min_face < 0:
        raise ValueError(f"min_face must be >= 0 pixels, got {min_face}")
    root = require_dir(root, "VOC").resolve()
    annotations = annotation_folder(root)
    if annotations is None:
        raise FileNotFoundError(f"VOC annotations folder not found: {root / 'annotations'}")
    images = image_folder(root)
    if images is None:
        raise FileNotFoundError(f"VOC images folder not found: {root}/{{{','.join(IMAGE_FOLDERS)}}}")
    by_stem = index_images(images)
    report = VocReport(dataset=root.name)
    rows: list[ManifestRow] = []
    for xml_path in sorted(annotations.glob("*.xml")):
        rows.extend(_scan_annotation(xml_path, by_stem, root.name, min_face, report))
    log.debug("%s", report.summary())
    return rows, report


def _scan_annotation(
    xml_path: Path, by_stem: dict[str, Path], dataset: str, min_face: int, report: VocReport
) -> list[ManifestRow]:
    try:
        annotation = read_annotation(xml_path)
    except ValueError as err:
        report.problems.append(str(err))
        return []
    image_path = image_of(annotation, by_stem)
    if image_path is None:
        report.problems.append(f"{xml_path}: no image named {annotation.filename!r} or same stem")
        return []
    width, height = header_size(image_path)
    if not (width and height):  # unreadable header: trust the xml; verify will report the file
        width, height = annotation.size
    report.photos += 1
    sha = file_sha256(image_path)
    group = photo_group(dataset, image_path)
    rows = []
    for obj in annotation.objects:
        try:
            label = normalise_label(obj.name)
        except ValueError:
            report.unknown_labels[obj.name] += 1
            continue
        box = _clamped_box(obj, width, height, f"{xml_path.name} object {obj.index}", report)
        if box is None:
            continue
        if min(box[2] - box[0], box[3] - box[1]) < min_face:
            report.too_small += 1
            continue
        report.boxes += 1
        rows.append(ManifestRow(
            path=str(image_path), box=box, label=label, group=group, source=SOURCE, dataset=dataset,
            width=width, height=height, sha256=sha,
        ))
    return rows


def _clamped_box(obj: VocObject, width: int, height: int, where: str, report: VocReport) -> RawBox | None:
    raw = obj.box
    if raw is None:
        report.degenerate.append(f"{where}: missing or non-numeric bndbox")
        return None
    x0, y0, x1, y1 = raw
    if width and height:
        x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
        y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    if x1 <= x0 or y1 <= y0:
        report.degenerate.append(f"{where}: degenerate box {tuple(raw)} in a {width}x{height} photo")
        return None
    if (x0, y0, x1, y1) != tuple(raw):
        report.clamped += 1
    return (x0, y0, x1, y1)
