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

from maskdetect.data.manifest import ManifestRow, file_sha256, require_dir
from maskdetect.data.voc_xml import VocPolicy, annotation_folder, photo_index, read_photo

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


def voc_policy(min_face: float = DEFAULT_MIN_FACE) -> VocPolicy:
    """The policy `data prepare` reads a VOC set with: clamp to the photo, skip faces under
    `min_face` pixels and labels it does not know (both counted in the report).

    >>> voc_policy(16)
    VocPolicy(min_face=16, clamp=True, unknown_labels='skip', photo_folders='image_folder')
    """
    return VocPolicy(min_face=min_face, clamp=True, unknown_labels="skip", photo_folders="image_folder")


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
    policy = voc_policy(min_face)  # raises on a negative min_face
    root = require_dir(root, "VOC").resolve()
    annotations = annotation_folder(root)
    if annotations is None:
        raise FileNotFoundError(f"VOC annotations folder not found: {root / 'annotations'}")
    by_stem = photo_index(root, policy)
    report = VocReport(dataset=root.name)
    rows: list[ManifestRow] = []
    for xml_path in sorted(annotations.glob("*.xml")):
        rows.extend(_scan_annotation(xml_path, by_stem, root.name, policy, report))
    log.debug("%s", report.summary())
    return rows, report


def _scan_annotation(
    xml_path: Path, by_stem: dict[str, Path], dataset: str, policy: VocPolicy, report: VocReport
) -> list[ManifestRow]:
    photo = read_photo(xml_path, by_stem, policy)
    if photo.error or photo.image is None:
        report.problems.append(str(photo.error))
        return []
    width, height = photo.size
    report.photos += 1
    report.clamped += photo.clamped
    for skip in photo.skipped:
        if skip.reason == "unknown_label":
            report.unknown_labels[skip.obj.name] += 1
        elif skip.reason == "bad_box":
            report.degenerate.append(skip.detail)
        else:
            report.too_small += 1
    sha = file_sha256(photo.image)
    group = photo_group(dataset, photo.image)
    report.boxes += len(photo.faces)
    return [
        ManifestRow(
            path=str(photo.image), box=face.box, label=face.label, group=group, source=SOURCE,
            dataset=dataset, width=width, height=height, sha256=sha,
        )
        for face in photo.faces
    ]
