"""MaskedFace-Net: ``CMFD/<thousands>/<id>_Mask.jpg`` (covered), ``IMFD/.../<id>_Mask_<part>.jpg``.

Every image is an FFHQ-aligned head shot; its face box comes from `aligned_headshot_box`, so crops
are cut by the same policy as photo boxes. The group is the FFHQ id: one person, one split.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from maskdetect.data.manifest import ManifestRow, file_sha256, header_size, require_dir
from maskdetect.faces.crop import aligned_headshot_box
from maskdetect.images import find_files
from maskdetect.labels import MASKEDFACE_SUBTYPES

log = logging.getLogger(__name__)

SOURCE = "maskedface_net"
MASKEDFACE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")
# Longest suffixes first is not needed: the whole suffix after the id is matched exactly.
_NAME = re.compile(r"^(?P<id>\d+)_(?P<suffix>Mask(?:_[A-Za-z]+)*)$")


def ffhq_group(ffhq_id: str) -> str:
    """The group of every image made from one FFHQ face.

    >>> ffhq_group("01014")
    'ffhq-01014'
    """
    return f"ffhq-{int(ffhq_id):05d}"


def parse_maskedface_name(stem: str) -> tuple[str, str, str] | None:
    """(ffhq id, class, subtype) of a MaskedFace-Net file stem, or None if it is not one.

    >>> parse_maskedface_name("01014_Mask_Mouth_Chin")
    ('01014', 'incorrect', 'nose_exposed')
    >>> parse_maskedface_name("01014") is None
    True
    """
    match = _NAME.match(stem)
    if not match or match["suffix"] not in MASKEDFACE_SUBTYPES:
        return None
    label, subtype = MASKEDFACE_SUBTYPES[match["suffix"]]
    return match["id"], label, subtype


def scan_maskedface_net(root: str | os.PathLike) -> Iterator[ManifestRow]:
    """Rows for every MaskedFace-Net image under `root` (which holds CMFD/ and/or IMFD/).

    Raises:
        FileNotFoundError: `root` is not a folder, or holds neither CMFD/ nor IMFD/.

    >>> import tempfile, pathlib
    >>> list(scan_maskedface_net(tempfile.mkdtemp()))
    Traceback (most recent call last):
    ...
    FileNotFoundError: no CMFD/ or IMFD/ folder in ...
    """
    root = require_dir(root, "MaskedFace-Net").resolve()
    parts = [root / name for name in ("CMFD", "IMFD") if (root / name).is_dir()]
    if not parts:
        raise FileNotFoundError(f"no CMFD/ or IMFD/ folder in {root}")
    source_groups = _synth_source_groups(root)
    for part in parts:
        for path in find_files(part, MASKEDFACE_SUFFIXES):
            parsed = parse_maskedface_name(path.stem)
            if parsed is None:
                log.warning("%s: not a MaskedFace-Net file name, skipped", path)
                continue
            ffhq_id, label, subtype = parsed
            group = source_groups.get(path.relative_to(root).as_posix()) or ffhq_group(ffhq_id)
            yield headshot_row(path, label, subtype, group, SOURCE, root.name)


def _synth_source_groups(root: Path) -> dict[str, str]:
    """For masks drawn by `maskdetect synth`: file -> the group of the photo the face came from.

    Their numbers are not FFHQ ids; grouping by the source photo keeps a drawn mask in the same
    split as the photo (and the other masks drawn on the same face).
    """
    manifest = root / "synth_manifest.csv"
    if not manifest.is_file():
        return {}
    with manifest.open(newline="") as handle:
        return {row["file"]: row.get("source_group") or "" for row in csv.DictReader(handle)}


def headshot_row(path: Path, label: str, subtype: str, group: str, source: str, dataset: str) -> ManifestRow:
    """A row for an FFHQ-aligned head shot, its face box from `aligned_headshot_box` (shared with FFHQ)."""
    width, height = header_size(path)
    box = aligned_headshot_box(width, height) if width and height else None
    return ManifestRow(
        path=str(path), box=box, label=label, subtype=subtype, group=group, source=source,
        dataset=dataset, width=width, height=height, sha256=file_sha256(path),
    )
