"""A plain folder of class-named subfolders (``with_mask/``, ``uncovered/`` ...): one row per file.

Each file is taken as one face image (no box), its own group. Subfolder names are mapped with
`maskdetect.labels.normalise_label`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from maskdetect.data.manifest import ManifestRow, file_sha256, header_size, require_dir
from maskdetect.images import IMAGE_SUFFIXES
from maskdetect.labels import normalise_label

log = logging.getLogger(__name__)

SOURCE = "folder"


def scan_folder(root: str | os.PathLike) -> list[ManifestRow]:
    """Rows for every image in the class-named subfolders of `root` (searched recursively).

    Raises:
        FileNotFoundError: `root` is not a folder.
        ValueError: a subfolder's name is not a known label (the message lists the known ones).

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "dogs").mkdir()
    >>> scan_folder(root)
    Traceback (most recent call last):
    ...
    ValueError: .../dogs: unknown label 'dogs'; known labels: ...
    """
    root = require_dir(root, "image").resolve()
    rows = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            label = normalise_label(sub.name)
        except ValueError as err:
            raise ValueError(f"{sub}: {err}") from None
        for path in sorted(sub.rglob("*")):
            if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
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
