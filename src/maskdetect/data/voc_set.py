"""A Pascal VOC photo set as evaluate-detect and fit-verifier read it: every annotated face as drawn
(no clamping, no minimum size), the set's layout, and which photos to use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from maskdetect.data.voc_xml import (
    VocPolicy,
    annotation_folder,
    image_folder,
    index_images,
    photo_index,
    read_photo,
)

log = logging.getLogger(__name__)

TruthFace = tuple[tuple[float, float, float, float], str]


# evaluate-detect scores the faces as annotated: no clamping, no minimum size (small faces are
# their own recall bucket), and a label it does not know makes the file unusable.
DETECT_VOC_POLICY = VocPolicy(min_face=0, clamp=False, unknown_labels="raise", photo_folders="image_folder")


def load_voc_faces(
    xml_path: str | Path, image_dir: str | Path, images: dict[str, Path] | None = None
) -> tuple[Path, list[TruthFace]]:
    """The image file and the (box, class) faces of one VOC annotation, read with `DETECT_VOC_POLICY`.

    The image is found in `image_dir` by the xml's <filename> stem, else the xml's own stem (any
    image suffix, any case). A face whose box is missing, not a number or empty is skipped.

    Args:
        xml_path: the annotation file.
        image_dir: the folder of its photos.
        images: `voc_xml.index_images(image_dir)`, when reading many files of one set.

    Raises:
        ValueError: unreadable xml, or a label `normalise_label` does not know.
        FileNotFoundError: no image for the annotation.
    """
    xml_path, image_dir = Path(xml_path), Path(image_dir)
    photo = read_photo(xml_path, images if images is not None else index_images(image_dir), DETECT_VOC_POLICY)
    if photo.error_kind == "no_image":
        raise FileNotFoundError(f"{xml_path}: no image named {xml_path.stem}.* in {image_dir}")
    if photo.error or photo.image is None:
        raise ValueError(photo.error)
    for skip in photo.skipped:  # only bad boxes: unknown labels raise, and there is no minimum
        log.warning("%s: skipping face %d, a bad box %s", xml_path, skip.obj.index, skip.obj.box)
    return photo.image, [(face.box, face.label) for face in photo.faces]


def voc_layout(voc_dir: str | Path) -> tuple[Path, Path]:
    """(annotations folder, images folder) of a VOC set: annotations/ or Annotations/, and
    JPEGImages/ or images/.

    Raises:
        FileNotFoundError: either folder is missing (names what was looked for).
    """
    voc_dir = Path(voc_dir)
    if not voc_dir.is_dir():
        raise FileNotFoundError(f"{voc_dir}: no such folder")
    ann, img = annotation_folder(voc_dir), image_folder(voc_dir)
    if ann is None or img is None:
        raise FileNotFoundError(
            f"{voc_dir}: expected a Pascal VOC set with annotations/ (or Annotations/) and "
            "JPEGImages/ (or images/)"
        )
    return ann, img


def voc_items(
    voc_dir: str | Path,
    exclude: Iterable[str] = (),
    limit: int | None = None,
    only: Iterable[str] | None = None,
) -> list:
    """(image path, faces) of every annotation in a VOC set, sorted by name; unreadable ones are
    logged and left out. `exclude` holds image or xml file names (or stems) to leave out; `only`,
    when given, the ones to keep.
    """
    ann_dir, img_dir = voc_layout(voc_dir)
    images = photo_index(Path(voc_dir), DETECT_VOC_POLICY)
    skip = {Path(name).stem for name in exclude}
    keep = None if only is None else {Path(name).stem for name in only}
    items = []
    for xml in sorted(ann_dir.glob("*.xml")):
        if xml.stem in skip or (keep is not None and xml.stem not in keep):
            continue
        try:
            items.append(load_voc_faces(xml, img_dir, images))
        except (ValueError, FileNotFoundError) as err:
            log.warning("skipping %s", err)
        if limit and len(items) >= limit:
            break
    if not items:
        raise FileNotFoundError(f"{ann_dir}: no usable VOC annotations (*.xml)")
    return items


def read_names(path: str | Path) -> list[str]:
    """Image names listed in a file, for `voc_items`' `exclude` and `only`: the first tab- or
    comma-separated field of each line; empty lines and lines starting with # are skipped.

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such list of image names")
    names = []
    for line in path.read_text().splitlines():
        first = line.split("\t")[0].split(",")[0].strip()
        if first and not first.startswith("#"):
            names.append(first)
    return names


def excluded_count(voc_dir: str | Path, exclude: Iterable[str]) -> int:
    # How many of the set's annotations `exclude` leaves out (reported beside the figures).
    annotations, _ = voc_layout(voc_dir)
    skip = {Path(name).stem for name in exclude}
    return sum(1 for xml in annotations.glob("*.xml") if xml.stem in skip)
