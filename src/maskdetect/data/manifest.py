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
from collections.abc import Iterable
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


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Read a manifest CSV written by `write_manifest` (extra columns are ignored).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a required column is missing or a row has a bad value (names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("path", "label", "group") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a manifest, missing column(s) {', '.join(missing)}")
        rows = []
        for line, record in enumerate(reader, start=2):
            try:
                rows.append(_row_from_record(record))
            except (ValueError, KeyError) as err:
                raise ValueError(f"{path}, line {line}: {err}") from None
    return rows


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

    Cheap (no decoding): verify decodes later and reports files that fail.
    """
    from PIL import Image  # local: keep importing the manifest module light

    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 0, 0
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
