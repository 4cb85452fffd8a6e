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

from maskdetect.data.voc_xml import VocFace, VocPolicy, VocSkip, annotation_folder, photo_index, read_photo
from maskdetect.faces.crop import Box
from maskdetect.images import find_images
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
    for path in find_images(root):
        yield SourceFace(path, None, 0)


# Synth draws masks on bare faces of any size, as annotated: no clamping, no minimum; photos may
# also sit beside the XML.
SYNTH_VOC_POLICY = VocPolicy(min_face=0, clamp=False, unknown_labels="skip", photo_folders="anywhere")


def _iter_voc(root: Path, counts: dict[str, int]) -> Iterator[SourceFace]:
    ann_dir = annotation_folder(root)
    if ann_dir is None:
        return
    images = photo_index(root, SYNTH_VOC_POLICY)
    for xml_path in sorted(ann_dir.glob("*.xml")):
        photo = read_photo(xml_path, images, SYNTH_VOC_POLICY)
        if photo.error_kind == "unreadable":
            log.warning("%s, skipped", photo.error)
            _count(counts, "bad_annotation")
            continue
        if photo.image is None:
            log.warning("%s, skipped", photo.error)
            _count(counts, "missing_image")
            continue
        # In object order, so a --limit that stops mid-photo leaves the counts as they were.
        verdicts: list[VocFace | VocSkip] = [*photo.faces, *photo.skipped]
        for verdict in sorted(verdicts, key=lambda v: v.index if isinstance(v, VocFace) else v.obj.index):
            if isinstance(verdict, VocFace) and verdict.label == UNCOVERED:
                yield SourceFace(photo.image, verdict.box, verdict.index)
            elif isinstance(verdict, VocFace):
                _count(counts, f"not_uncovered_{verdict.label}")
            elif verdict.reason == "unknown_label":
                _count(counts, "unknown_label")
            else:  # a bad box: a face with a mask counts as not uncovered first, as before
                label = normalise_label(verdict.obj.name)
                _count(counts, "bad_box" if label == UNCOVERED else f"not_uncovered_{label}")


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1
