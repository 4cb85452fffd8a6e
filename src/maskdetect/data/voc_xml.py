"""Reading Pascal VOC sets: the one reader `data prepare`, `synth` and `evaluate-detect` share.

A VOC set is a folder with ``annotations/*.xml`` (or ``Annotations/``) beside its photos in
``JPEGImages/`` or ``images/``. `read_photo` turns one annotation file into faces under an explicit
`VocPolicy` (minimum face, clamping, unknown labels, where photos are looked for); each caller
passes the policy that gives its results and decides how to report what was skipped.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from maskdetect.images import IMAGE_SUFFIXES
from maskdetect.labels import normalise_label

ANNOTATION_FOLDERS: tuple[str, ...] = ("annotations", "Annotations")
IMAGE_FOLDERS: tuple[str, ...] = ("JPEGImages", "images", "Images", "JPEGimages")
UNKNOWN_LABEL_POLICIES: tuple[str, ...] = ("skip", "raise")
PHOTO_FOLDER_POLICIES: tuple[str, ...] = ("image_folder", "anywhere")

RawBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class VocPolicy:
    """What reading a VOC annotation keeps.

    Objects are judged in this order: label, box present and finite, clamping (if on), box not
    empty, `min_face`.

    Attributes:
        min_face: skip boxes whose shorter side (after clamping) is below this many pixels.
        clamp: clamp boxes to the photo (its header size, else the size the xml states).
        unknown_labels: "skip" a face with a label `normalise_label` does not know, or "raise"
            (the whole file is then the error).
        photo_folders: "image_folder": photos are in the set's image folder (JPEGImages/,
            images/ ...), which must exist; "anywhere": every image folder, then the annotations
            folder, none required.

    >>> VocPolicy(unknown_labels="ignore")
    Traceback (most recent call last):
    ...
    ValueError: unknown_labels must be one of ('skip', 'raise'), got 'ignore'
    """

    min_face: float = 0.0
    clamp: bool = False
    unknown_labels: Literal["skip", "raise"] = "skip"
    photo_folders: Literal["image_folder", "anywhere"] = "image_folder"

    def __post_init__(self) -> None:
        if not self.min_face >= 0:
            raise ValueError(f"min_face must be >= 0 pixels, got {self.min_face}")
        if self.unknown_labels not in UNKNOWN_LABEL_POLICIES:
            choices = UNKNOWN_LABEL_POLICIES
            raise ValueError(f"unknown_labels must be one of {choices}, got {self.unknown_labels!r}")
        if self.photo_folders not in PHOTO_FOLDER_POLICIES:
            choices = PHOTO_FOLDER_POLICIES
            raise ValueError(f"photo_folders must be one of {choices}, got {self.photo_folders!r}")


@dataclass(frozen=True)
class VocObject:
    """One ``<object>``: its place in the file, its label as written, and its box as written.

    `box` is None when a coordinate is missing or not a finite number; it is not clamped or checked
    for size (`read_photo` does that under a policy).
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


@dataclass(frozen=True)
class VocFace:
    """A face kept: its object index, its box (clamped if the policy says so) and its class."""

    index: int
    box: RawBox
    label: str


@dataclass(frozen=True)
class VocSkip:
    """An object left out: why ("unknown_label", "bad_box" or "too_small"), and what it was."""

    reason: Literal["unknown_label", "bad_box", "too_small"]
    obj: VocObject
    detail: str


@dataclass
class VocPhoto:
    """One annotation read under a policy.

    Attributes:
        xml: the annotation file.
        image: its photo, or None when `error` is set.
        size: (width, height) used for clamping ((0, 0) when not clamping or unknown).
        faces: the faces kept, in object order.
        skipped: the objects left out.
        clamped: how many kept-shape boxes (kept or then too small) clamping changed.
        error: why the whole file is left out (unreadable xml, no photo, an unknown label under
            "raise"), or None.
        error_kind: "unreadable", "no_image" or "unknown_label" with `error`, else "".
    """

    xml: Path
    image: Path | None = None
    size: tuple[int, int] = (0, 0)
    faces: list[VocFace] = field(default_factory=list)
    skipped: list[VocSkip] = field(default_factory=list)
    clamped: int = 0
    error: str | None = None
    error_kind: str = ""


def annotation_folder(root: Path) -> Path | None:
    """The annotations folder of a VOC set, or None.

    >>> annotation_folder(Path("/nonexistent")) is None
    True
    """
    return next((root / n for n in ANNOTATION_FOLDERS if (root / n).is_dir()), None)


def image_folder(root: Path) -> Path | None:
    """The photos folder of a VOC set (JPEGImages/, images/ ...), or None.

    >>> image_folder(Path("/nonexistent")) is None
    True
    """
    return next((root / n for n in IMAGE_FOLDERS if (root / n).is_dir()), None)


def photo_index(root: Path, policy: VocPolicy) -> dict[str, Path]:
    """The photos of the VOC set at `root` by lower-cased stem, from the folders `policy` names.

    Raises:
        FileNotFoundError: the policy needs an image folder and there is none (names those looked for).

    >>> photo_index(Path("/nonexistent"), VocPolicy(photo_folders="anywhere"))
    {}
    """
    if policy.photo_folders == "image_folder":
        folder = image_folder(root)
        if folder is None:
            raise FileNotFoundError(f"VOC images folder not found: {root}/{{{','.join(IMAGE_FOLDERS)}}}")
        return index_images(folder)
    folders = [root / n for n in IMAGE_FOLDERS if (root / n).is_dir()]
    annotations = annotation_folder(root)
    return index_images(*folders, *([annotations] if annotations else []))


class PhotoIndex(dict[str, Path]):
    """Photos by lower-cased stem (the first folder, then the first name, wins), and by full name.

    `ambiguous` holds every stem that more than one photo shares (``a.jpg`` beside ``a.png``), so an
    annotation that names neither exactly is refused rather than paired with a guess.
    """

    def __init__(self) -> None:
        super().__init__()
        self.by_name: dict[str, Path] = {}
        self.ambiguous: dict[str, list[Path]] = {}

    def add(self, path: Path) -> None:
        stem = path.stem.lower()
        if stem in self and self[stem] != path:
            self.ambiguous.setdefault(stem, [self[stem]]).append(path)
        self.setdefault(stem, path)
        self.by_name.setdefault(path.name.lower(), path)


def index_images(*folders: Path) -> PhotoIndex:
    """Image files of `folders` by lower-cased stem (the first folder, then the first name, wins).

    Not recursive. An annotation naming ``x.jpg`` then finds ``x.JPG``, ``x.jpeg`` or ``x.png``.

    >>> index_images()
    {}
    """
    index = PhotoIndex()
    for folder in folders:
        for path in sorted(folder.iterdir()):
            # find_files' rule, one level deep: image suffix in any case, hidden names left out
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
                index.add(path)
    return index


def read_annotation(xml_path: str | Path) -> VocAnnotation:
    """Parse one VOC annotation file, as written (no policy).

    Raises:
        ValueError: the file is not readable XML, or states an infinite size (the message names it).

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
    size = _stated_size(xml_path, root)
    return VocAnnotation(xml_path, (root.findtext("filename") or "").strip(), size, objects)


def image_of(annotation: VocAnnotation, images: dict[str, Path]) -> Path | None:
    """The photo of `annotation` in an `index_images` index: the file its <filename> names, else the
    one with that name's stem, else the one with the xml's stem.

    Raises:
        ValueError: several photos share the stem it would go by (``a.jpg`` and ``a.png``) and
            <filename> names none of them: pairing one would be a guess (the message names them).

    >>> image_of(VocAnnotation(Path("a.xml"), "b.jpg", (0, 0), []), {"a": Path("A.png")})
    PosixPath('A.png')
    """
    by_name = getattr(images, "by_name", {})
    if annotation.filename and annotation.filename.lower() in by_name:
        return by_name[annotation.filename.lower()]
    for stem in (Path(annotation.filename).stem, annotation.path.stem):
        if stem and stem.lower() in images:
            clash = getattr(images, "ambiguous", {}).get(stem.lower())
            if clash:
                names = " and ".join(p.name for p in clash)
                raise ValueError(
                    f"{names} both match {annotation.path.name} (its <filename> is "
                    f"{annotation.filename or 'empty'}); rename one, or name the photo in <filename>"
                )
            return images[stem.lower()]
    return None


def read_photo(xml_path: str | Path, images: dict[str, Path], policy: VocPolicy) -> VocPhoto:
    """One annotation file's photo and faces under `policy`; a file-level problem is in `.error`.

    Args:
        xml_path: the annotation file.
        images: the set's photos, from `photo_index`.
        policy: what to keep.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.xml").write_text("<annotation><object><name>with_mask</name><bndbox><xmin>1"
    ...     "</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    >>> photo = read_photo(folder / "a.xml", {"a": folder / "a.jpg"}, VocPolicy(min_face=16))
    >>> photo.faces, [s.reason for s in photo.skipped]
    ([], ['too_small'])
    """
    xml_path = Path(xml_path)
    photo = VocPhoto(xml_path)
    try:
        annotation = read_annotation(xml_path)
    except ValueError as err:
        photo.error, photo.error_kind = str(err), "unreadable"
        return photo
    try:
        photo.image = image_of(annotation, images)
    except ValueError as err:
        photo.error, photo.error_kind = f"{xml_path}: {err}", "ambiguous_image"
        return photo
    if photo.image is None:
        photo.error = f"{xml_path}: no image named {annotation.filename!r} or same stem"
        photo.error_kind = "no_image"
        return photo
    if policy.clamp:
        photo.size = _photo_size(photo.image, annotation)
    for obj in annotation.objects:
        try:
            label = normalise_label(obj.name)
        except ValueError as err:
            if policy.unknown_labels == "raise":
                photo.error, photo.error_kind = f"{xml_path}: {err}", "unknown_label"
                photo.image, photo.faces = None, []
                return photo
            photo.skipped.append(VocSkip("unknown_label", obj, f"unknown label {obj.name!r}"))
            continue
        _judge(photo, obj, label, policy)
    return photo


def _judge(photo: VocPhoto, obj: VocObject, label: str, policy: VocPolicy) -> None:
    where = f"{photo.xml.name} object {obj.index}"
    raw = obj.box
    if raw is None:
        photo.skipped.append(VocSkip("bad_box", obj, f"{where}: missing or non-numeric bndbox"))
        return
    x0, y0, x1, y1 = raw
    width, height = photo.size
    if policy.clamp and width and height:
        x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
        y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    if x1 <= x0 or y1 <= y0:
        detail = f"{where}: degenerate box {tuple(raw)} in a {width}x{height} photo"
        photo.skipped.append(VocSkip("bad_box", obj, detail))
        return
    if (x0, y0, x1, y1) != tuple(raw):
        photo.clamped += 1
    if min(x1 - x0, y1 - y0) < policy.min_face:
        detail = f"{where}: box {tuple(raw)} under {policy.min_face} px"
        photo.skipped.append(VocSkip("too_small", obj, detail))
        return
    photo.faces.append(VocFace(obj.index, (x0, y0, x1, y1), label))


def _photo_size(image: Path, annotation: VocAnnotation) -> tuple[int, int]:
    from maskdetect.data.manifest import header_size  # local: manifest pulls in fileio and faces

    width, height = header_size(image)
    if not (width and height):  # unreadable header: trust the xml; verify will report the file
        width, height = annotation.size
    return width, height


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


def _stated_size(xml_path: Path, root: ET.Element) -> tuple[int, int]:
    try:
        width = float(root.findtext("size/width") or 0)
        height = float(root.findtext("size/height") or 0)
    except ValueError:  # not a number: no stated size (the photo's header is used)
        return 0, 0
    if math.isinf(width) or math.isinf(height):  # int() would raise OverflowError and end the run
        raise ValueError(f"{xml_path}: VOC <size> is not a finite number ({width} x {height})")
    try:
        return int(width), int(height)
    except ValueError:  # NaN: as unstated, as before
        return 0, 0
