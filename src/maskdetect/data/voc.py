"""Pascal VOC photo sets: ``annotations/*.xml`` beside ``images/`` or ``JPEGImages/``; one row per box.

Each face is a crop spec (the photo plus its box) cut later by `maskdetect.faces.crop.crop_face`, the
function inference uses too. The group is the photo. Boxes are clamped to the photo; boxes smaller
than `min_face` pixels (shorter side) are skipped and counted; degenerate boxes are reported.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from maskdetect.data.manifest import ManifestRow, file_sha256, header_size, require_dir
from maskdetect.images import IMAGE_SUFFIXES
from maskdetect.labels import normalise_label

log = logging.getLogger(__name__)

SOURCE = "voc"
IMAGE_FOLDERS: tuple[str, ...] = ("JPEGImages", "images", "Images", "JPEGimages")
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
    annotations = next((root / n for n in ("annotations", "Annotations") if (root / n).is_dir()), None)
    if annotations is None:
        raise FileNotFoundError(f"VOC annotations folder not found: {root / 'annotations'}")
    images = next((root / n for n in IMAGE_FOLDERS if (root / n).is_dir()), None)
    if images is None:
        raise FileNotFoundError(f"VOC images folder not found: {root}/{{{','.join(IMAGE_FOLDERS)}}}")
    by_stem = _index_images(images)
    report = VocReport(dataset=root.name)
    rows: list[ManifestRow] = []
    for xml_path in sorted(annotations.glob("*.xml")):
        rows.extend(_scan_annotation(xml_path, by_stem, root.name, min_face, report))
    log.debug("%s", report.summary())
    return rows, report


def _index_images(folder: Path) -> dict[str, Path]:
    # Stems, lower-cased, so an xml naming x.jpg finds x.JPG, x.jpeg or x.png.
    index: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            index.setdefault(path.stem.lower(), path)
    return index


def _resolve_image(tree: ET.Element, xml_path: Path, by_stem: dict[str, Path]) -> Path | None:
    names = [Path(tree.findtext("filename", "").strip()).stem, xml_path.stem]
    return next((by_stem[n.lower()] for n in names if n and n.lower() in by_stem), None)


def _scan_annotation(
    xml_path: Path, by_stem: dict[str, Path], dataset: str, min_face: int, report: VocReport
) -> list[ManifestRow]:
    try:
        tree = ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        report.problems.append(f"{xml_path}: unreadable XML ({err})")
        return []
    image_path = _resolve_image(tree, xml_path, by_stem)
    if image_path is None:
        report.problems.append(f"{xml_path}: no image named {tree.findtext('filename', '')!r} or same stem")
        return []
    width, height = header_size(image_path)
    if not (width and height):  # unreadable header: trust the xml; verify will report the file
        width, height = _xml_size(tree)
    report.photos += 1
    sha = file_sha256(image_path)
    group = photo_group(dataset, image_path)
    rows = []
    for number, obj in enumerate(tree.iter("object")):
        where = f"{xml_path.name} object {number}"
        name = obj.findtext("name", "").strip()
        try:
            label = normalise_label(name)
        except ValueError:
            report.unknown_labels[name] += 1
            continue
        box = _read_box(obj, width, height, where, report)
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


def _xml_size(tree: ET.Element) -> tuple[int, int]:
    """The photo's size as its annotation states it; (0, 0) when missing or not a number."""
    try:
        return (int(float(tree.findtext("size/width", "0") or 0)),
                int(float(tree.findtext("size/height", "0") or 0)))
    except ValueError:
        return 0, 0


def _read_box(
    obj: ET.Element, width: int, height: int, where: str, report: VocReport
) -> tuple[float, float, float, float] | None:
    try:
        raw = [float(obj.findtext(f"bndbox/{k}", "")) for k in ("xmin", "ymin", "xmax", "ymax")]
    except ValueError:
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
