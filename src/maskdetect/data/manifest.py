"""The manifest: one row per face image, whatever the source, as a CSV that people and pandas read.

A row is either a whole file (``box`` empty) or a crop spec: the photo's path plus the face box that
`maskdetect.faces.crop.crop_face` cuts. ``sha256`` is the file's bytes; ``content_id`` identifies the
face image itself (the file hash, plus the box for a crop), so exact duplicates share it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from maskdetect.faces.crop import Box
from maskdetect.fileio import atomic_write_text, file_digest
from maskdetect.labels import CLASSES

# Column order of the CSV; optional columns written only when some row has them.
BASE_COLUMNS: tuple[str, ...] = (
    "path", "x0", "y0", "x1", "y1", "label", "subtype", "group", "source", "dataset",
    "width", "height", "sha256", "content_id",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("dhash", "split_group", "split", "tree_path")
# The manifest `maskdetect data split` writes at a split tree's root, with each row's ``tree_path``.
SPLIT_MANIFEST_NAME = "split_manifest.csv"


@dataclass
class ManifestRow:
    """One face image: a file, or a box in a photo.

    Attributes:
        path: the image file (absolute).
        box: the face box (x0, y0, x1, y1) in the file's pixels, or None for a whole-file face.
        label: one of `maskdetect.labels.CLASSES`.
        subtype: finer label where a source has one (e.g. ``nose_exposed``), else "".
        group: rows of one group must share a split (an FFHQ identity, a source photo).
        source: the source kind: ``maskedface_net``, ``ffhq``, ``voc`` or ``folder``.
        dataset: the source folder's name (e.g. ``andrewmvd-face-mask``).
        width, height: the file's size in pixels (0 when not known yet).
        sha256: hex sha256 of the file's bytes.
        dhash: hex difference hash of the whole file ("" until verify computes it).
        split_group: the group after merging near-duplicates ("" until split).
        split: ``train``, ``validation`` or ``holdout`` ("" until split).
        tree_path: the face image's file in the split tree, relative to the tree's root.
    """

    path: str
    box: Box | None
    label: str
    subtype: str = ""
    group: str = ""
    source: str = ""
    dataset: str = ""
    width: int = 0
    height: int = 0
    sha256: str = ""
    dhash: str = ""
    split_group: str = ""
    split: str = ""
    tree_path: str = ""

    def __post_init__(self) -> None:
        if self.label not in CLASSES:
            raise ValueError(f"{self.path}: label {self.label!r} is not one of {', '.join(CLASSES)}")

    @property
    def content_id(self) -> str:
        """The face image's identity: the file hash, plus the box for a crop.

        >>> ManifestRow("a.jpg", (1, 2, 3, 4), "covered", sha256="ab").content_id
        'ab:1,2,3,4'
        """
        if self.box is None:
            return self.sha256
        return f"{self.sha256}:{','.join(_fmt(v) for v in self.box)}"

    def replace(self, **changes: object) -> ManifestRow:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in chunks.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"")
    >>> file_sha256(p)[:12]
    'e3b0c44298fc'
    """
    return file_digest(path, "sha256")


def rows_to_csv(rows: Iterable[ManifestRow]) -> str:
    """The manifest CSV text for some rows (columns in `BASE_COLUMNS` order)."""
    rows = list(rows)
    extra = [c for c in OPTIONAL_COLUMNS if any(getattr(r, c) for r in rows)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*BASE_COLUMNS, *extra])
    for row in rows:
        box = ["", "", "", ""] if row.box is None else [_fmt(v) for v in row.box]
        writer.writerow([
            row.path, *box, row.label, row.subtype, row.group, row.source, row.dataset,
            row.width, row.height, row.sha256, row.content_id, *(getattr(row, c) for c in extra),
        ])
    return out.getvalue()


def write_manifest(rows: Iterable[ManifestRow], path: str | os.PathLike) -> Path:
    """Write rows as a manifest CSV, atomically; returns the path.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
    >>> _ = write_manifest([ManifestRow("a.jpg", None, "covered", group="g")], out)
    >>> read_manifest(out)[0].group
    'g'
    """
    write_text_if_changed(path, rows_to_csv(rows))
    return Path(path)


def write_text_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Write text atomically unless the file already holds exactly it (re-runs keep mtimes); True if written.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.txt"
    >>> write_text_if_changed(p, "a"), write_text_if_changed(p, "a")
    (True, False)
    """
    path = Path(path)
    if path.is_file() and path.read_bytes() == text.encode("utf-8"):
        return False
    atomic_write_text(path, text)
    return True


def manifest_records(
    path: str | os.PathLike, required: Iterable[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, record) of each row of a manifest CSV: the one place its file is opened and checked.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a `required` column is missing (names them and the columns there are).

    >>> next(manifest_records("/nonexistent.csv", ["path"]))
    Traceback (most recent call last):
    ...
    FileNotFoundError: manifest not found: /nonexistent.csv
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            missing_text = ", ".join(missing)
            raise ValueError(f"{path}: not a manifest, missing column(s) {missing_text}; it has {columns}")
        yield from enumerate(reader, start=2)


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Read a manifest CSV written by `write_manifest` (extra columns are ignored).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a required column is missing or a row has a bad value (names the line).

    >>> read_manifest("/nonexistent.csv")
    Traceback (most recent call last):
    ...
    FileNotFoundError: manifest not found: /nonexistent.csv
    """
    rows = []
    for line, record in manifest_records(path, ("path", "label", "group")):
        try:
            rows.append(_row_from_record(record))
        except (ValueError, KeyError) as err:
            raise ValueError(f"{path}, line {line}: {err}") from None
    return rows


def subtype_lookup(path: str | os.PathLike) -> dict[str, str]:
    """Each image's subtype from a manifest with ``path`` and ``subtype`` columns (``tree_path`` too
    for a split manifest), keyed by the tree file, the source file (both real paths, relative ones
    read from the manifest's folder) and the bare file name. Rows without a subtype are left out.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the ``path`` or ``subtype`` column is missing.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / SPLIT_MANIFEST_NAME
    >>> _ = path.write_text("path,subtype\\n/src/a_Mask_Chin.jpg,nose_mouth_exposed\\n/src/b.jpg,\\n")
    >>> subtype_lookup(path)["a_Mask_Chin.jpg"]
    'nose_mouth_exposed'
    """
    folder = Path(path).parent
    lookup = {}
    for _, record in manifest_records(path, ("path", "subtype")):
        if not record["subtype"]:
            continue
        if record.get("tree_path"):
            lookup[os.path.realpath(folder / record["tree_path"])] = record["subtype"]
        lookup[os.path.realpath(folder / record["path"])] = record["subtype"]
        lookup[Path(record["path"]).name] = record["subtype"]
    return lookup


def split_manifest_of(*folders: Path) -> Path | None:
    """The first `SPLIT_MANIFEST_NAME` file in `folders` (a split tree's root, a split's folder), or None.

    >>> split_manifest_of(Path("/nonexistent")) is None
    True
    """
    return next((f / SPLIT_MANIFEST_NAME for f in folders if (f / SPLIT_MANIFEST_NAME).is_file()), None)


def _row_from_record(record: dict[str, str]) -> ManifestRow:
    coords = [record.get(k, "") for k in ("x0", "y0", "x1", "y1")]
    box = None if all(c == "" for c in coords) else tuple(float(c) for c in coords)
    return ManifestRow(
        path=record["path"],
        box=box,
        label=record["label"],
        subtype=record.get("subtype", ""),
        group=record["group"],
        source=record.get("source", ""),
        dataset=record.get("dataset", ""),
        width=int(record.get("width") or 0),
        height=int(record.get("height") or 0),
        sha256=record.get("sha256", ""),
        dhash=record.get("dhash", "") or "",
        split_group=record.get("split_group", "") or "",
        split=record.get("split", "") or "",
        tree_path=record.get("tree_path", "") or "",
    )


def require_dir(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path if it is a folder, else FileNotFoundError naming it and what it should be."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {path}")
    return path


def header_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file's header, after EXIF rotation; (0, 0) if unreadable.

    Cheap (no decoding, `images.image_size`): verify decodes later and reports files that fail.
    """
    from maskdetect.images import ImageError, image_size  # local: keep importing the manifest module light

    try:
        return image_size(path, oriented=True)
    except ImageError:
        return 0, 0
