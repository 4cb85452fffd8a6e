"""Reading Pascal VOC annotation files: the one parser `data prepare`, `synth` and `evaluate-detect` share.

A VOC set is a folder with ``annotations/*.xml`` (or ``Annotations/``) beside its photos in
``JPEGImages/`` or ``images/``. This module only reads: the folders, the XML, and which photo an
annotation is about. What a bad box or a missing photo means stays with each caller (reported and
skipped in a manifest, counted by synth, one face skipped by evaluate-detect).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from maskdetect.images import IMAGE_SUFFIXES

ANNOTATION_FOLDERS: tuple[str, ...] = ("annotations", "Annotations")
IMAGE_FOLDERS: tuple[str, ...] = ("JPEGImages", "images", "Images", "JPEGimages")

RawBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class VocObject:
    """One ``<object>``: its place in the file, its label as written, and its box as written.

    `box` is None when a coordinate is missing or not a finite number; it is not clamped or checked
    for size (callers decide).
    """

    index: int
    name: str
    box: RawBox | None


@dataclass(frozen=True)
class VocAnnotation:
    """One annotation file: the photo it names, the size it states ((0, 0) if none), its objects."""

    path: Path
    filename: str
    size: tuple[int, int]
    objects: list[VocObject]


def annotation_folder(root: Path) -> Path | None:
    """The annotations folder of a VOC set, or None.

    >>> annotation_folder(Path("/nonexistent")) is None
    True
    """
    return next((root / n for n in ANNOTATION_FOLDERS if (root / n).is_dir()), None)


def image_folder(root: Path) -> Path | None:
    """The photos folder of a VOC set (JPEGImages/, images/ ...), or None."""
    return next((root / n for n in IMAGE_FOLDERS if (root / n).is_dir()), None)


def index_images(*folders: Path) -> dict[str, Path]:
    """Image files of `folders` by lower-cased stem (the first folder, then the first name, wins).

    An annotation naming ``x.jpg`` then finds ``x.JPG``, ``x.jpeg`` or ``x.png``.
    """
    index: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                index.setdefault(path.stem.lower(), path)
    return index


def read_annotation(xml_path: str | Path) -> VocAnnotation:
    """Parse one VOC annotation file.

    Raises:
        ValueError: the file is not readable XML (the message names it).

    >>> import tempfile, os
    >>> path = Path(tempfile.mkdtemp()) / "a.xml"
    >>> _ = path.write_text("<annotation><filename>a.jpg</filename><object><name>with_mask</name>"
    ...                     "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>"
    ...                     "</object></annotation>")
    >>> read_annotation(path).objects
    [VocObject(index=0, name='with_mask', box=(1.0, 2.0, 30.0, 40.0))]
    """
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as err:
        raise ValueError(f"{xml_path}: not a readable VOC annotation ({err})") from None
    objects = [
        VocObject(index, (obj.findtext("name") or "").strip(), _raw_box(obj))
        for index, obj in enumerate(root.iter("object"))
    ]
    return VocAnnotation(xml_path, (root.findtext("filename") or "").strip(), _stated_size(root), objects)


def image_of(annotation: VocAnnotation, images: dict[str, Path]) -> Path | None:
    """The photo of `annotation` in an `index_images` index: by its <filename>'s stem, else the xml's."""
    stems = [Path(annotation.filename).stem, annotation.path.stem]
    return next((images[s.lower()] for s in stems if s and s.lower() in images), None)


def _raw_box(obj: ET.Element) -> RawBox | None:
    values = []
    for key in ("xmin", "ymin", "xmax", "ymax"):
        try:
            value = float(obj.findtext(f"bndbox/{key}") or "nan")
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        values.append(value)
    return (values[0], values[1], values[2], values[3])


def _stated_size(root: ET.Element) -> tuple[int, int]:
    try:
        return (int(float(root.findtext("size/width") or 0)), int(float(root.findtext("size/height") or 0)))
    except ValueError:
        return 0, 0
