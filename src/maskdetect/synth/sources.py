"""The faces `maskdetect synth` draws on: uncovered faces of a Pascal VOC photo set, or a folder of faces.

A VOC set is a folder holding `annotations/*.xml` (or `Annotations/`) and its photos (`images/`,
`JPEGImages/` or beside the XML). Only faces labelled uncovered (without_mask, ...) are used: a mask
is drawn on a bare face. A folder of faces is any folder of images, one face each.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from maskdetect.data.voc_xml import IMAGE_FOLDERS, annotation_folder, image_of, index_images, read_annotation
from maskdetect.faces.crop import Box
from maskdetect.images import IMAGE_SUFFIXES
from maskdetect.labels import UNCOVERED, normalise_label

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceFace:
    """One face to draw on.

    Attributes:
        photo: the image file.
        box: the face box in the photo, or None for a folder face (the mesh finds it).
        index: the face's number within its photo (VOC object order).
    """

    photo: Path
    box: Box | None
    index: int = 0


def is_voc_folder(root: Path) -> bool:
    """True if `root` holds a Pascal VOC annotations folder.

    >>> is_voc_folder(Path("/nonexistent"))
    False
    """
    return annotation_folder(root) is not None


def iter_source_faces(root: str | Path, counts: dict[str, int] | None = None) -> Iterator[SourceFace]:
    """Every face to draw on under `root`, in a stable (sorted) order.

    Args:
        root: a VOC photo set or a folder of face images.
        counts: if given, counts of what was passed over are added to it (e.g. faces with masks).

    Raises:
        FileNotFoundError: `root` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"synth input is not a folder: {root}")
    counts = counts if counts is not None else {}
    if is_voc_folder(root):
        yield from _iter_voc(root, counts)
        return
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        yield SourceFace(path, None, 0)


def _iter_voc(root: Path, counts: dict[str, int]) -> Iterator[SourceFace]:
    ann_dir = annotation_folder(root)
    if ann_dir is None:
        return
    image_dirs = [root / n for n in IMAGE_FOLDERS if (root / n).is_dir()] + [ann_dir]
    images = index_images(*image_dirs)
    for xml_path in sorted(ann_dir.glob("*.xml")):
        try:
            annotation = read_annotation(xml_path)
        except ValueError as err:
            log.warning("%s, skipped", err)
            counts["bad_annotation"] = counts.get("bad_annotation", 0) + 1
            continue
        photo = image_of(annotation, images)
        if photo is None:
            log.warning("%s: no image %r found, skipped", xml_path, annotation.filename)
            counts["missing_image"] = counts.get("missing_image", 0) + 1
            continue
        for obj in annotation.objects:
            try:
                label = normalise_label(obj.name)
            except ValueError:
                counts["unknown_label"] = counts.get("unknown_label", 0) + 1
                continue
            if label != UNCOVERED:
                counts[f"not_uncovered_{label}"] = counts.get(f"not_uncovered_{label}", 0) + 1
                continue
            box = obj.box
            if box is None or not (box[2] > box[0] and box[3] > box[1]):
                counts["bad_box"] = counts.get("bad_box", 0) + 1
                continue
            yield SourceFace(photo, box, obj.index)
