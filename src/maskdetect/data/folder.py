"""Folders of class-named subfolders (``with_mask/``, ``uncovered/`` ...): the one class-folder scanner.

`class_folder_images` lists (image, class) for every image under a tree's class-named subfolders;
`data prepare` (`scan_folder`, one manifest row per file), training and evaluation
(`maskdetect.train.dataset.scan_class_folders`) and the explain summary
(`maskdetect.explain.summary.labelled_images`) all read trees through it. Subfolder names are mapped
with `maskdetect.labels.normalise_label`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

from maskdetect.data.manifest import ManifestRow, file_sha256, header_size, require_dir
from maskdetect.images import find_images
from maskdetect.labels import normalise_label

log = logging.getLogger(__name__)

SOURCE = "folder"
UNKNOWN_FOLDER_POLICIES: tuple[str, ...] = ("raise", "skip")


def class_folder_images(
    root: str | os.PathLike, *, unknown_folders: Literal["raise", "skip"] = "raise"
) -> list[tuple[Path, str]]:
    """(image, class) for every image in the class-named subfolders of `root`, sorted.

    Each subfolder (hidden ones left out) is searched recursively with `maskdetect.images.find_images`.

    Args:
        root: a folder holding one folder per class.
        unknown_folders: "raise" on a subfolder whose name is no label, or "skip" it.

    Raises:
        FileNotFoundError: `root` is not a folder.
        ValueError: a subfolder's name is not a known label (names it and the known labels), or an
            unknown `unknown_folders`.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "with_mask").mkdir(); (root / "dogs").mkdir()
    >>> _ = (root / "with_mask" / "a.jpg").write_bytes(b"")
    >>> [(p.name, label) for p, label in class_folder_images(root, unknown_folders="skip")]
    [('a.jpg', 'covered')]
    """
    if unknown_folders not in UNKNOWN_FOLDER_POLICIES:
        raise ValueError(f"unknown_folders must be one of {UNKNOWN_FOLDER_POLICIES}, got {unknown_folders!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found: list[tuple[Path, str]] = []
    for sub in subfolders(root):
        try:
            label = normalise_label(sub.name)
        except ValueError as err:
            if unknown_folders == "skip":
                continue
            raise ValueError(f"{sub}: not a class folder ({err})") from None
        found.extend((path, label) for path in find_images(sub))
    return found


def subfolders(root: Path) -> list[Path]:
    """The folders directly in `root`, hidden ones left out, sorted.

    >>> subfolders(Path("/nonexistent"))
    []
    """
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_folder(root: str | os.PathLike) -> list[ManifestRow]:
    """Rows for every image in the class-named subfolders of `root` (searched recursively).

    Each file is taken as one face image (no box), its own group.

    Raises:
        FileNotFoundError: `root` is not a folder.
        ValueError: a subfolder's name is not a known label (the message lists the known ones).

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "dogs").mkdir()
    >>> scan_folder(root)
    Traceback (most recent call last):
    ...
    ValueError: .../dogs: not a class folder (unknown label 'dogs'; known labels: ...)
    """
    root = require_dir(root, "image").resolve()
    rows = []
    for path, label in class_folder_images(root):
        width, height = header_size(path)
        rows.append(ManifestRow(
            path=str(path), box=None, label=label, group=file_group(root, path),
            source=SOURCE, dataset=root.name, width=width, height=height, sha256=file_sha256(path),
        ))
    if not rows:
        log.warning("%s: no images found in class subfolders", root)
    return rows


def file_group(root: Path, path: Path) -> str:
    """The group of one file of a class-folder tree (also used for masks drawn on it).

    >>> file_group(Path("/data/faces"), Path("/data/faces/uncovered/a.jpg"))
    'faces/uncovered/a.jpg'
    """
    return f"{root.name}/{path.relative_to(root)}"
