"""All sources to one manifest: `build_manifest` calls each source's scanner and collects the rows."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from maskdetect.data.ffhq import scan_ffhq
from maskdetect.data.folder import scan_folder
from maskdetect.data.manifest import ManifestRow, require_dir
from maskdetect.data.maskedface_net import scan_maskedface_net
from maskdetect.data.voc import DEFAULT_MIN_FACE, VocReport, scan_voc

log = logging.getLogger(__name__)

Paths = Sequence[str | os.PathLike]


@dataclass
class ManifestBuild:
    """The rows of a manifest and what each VOC set skipped."""

    rows: list[ManifestRow] = field(default_factory=list)
    voc_reports: list[VocReport] = field(default_factory=list)


def build_manifest(
    *,
    maskedface_net: Paths = (),
    ffhq: Paths = (),
    voc: Paths = (),
    folder: Paths = (),
    min_face: int = DEFAULT_MIN_FACE,
) -> ManifestBuild:
    """Scan every given source folder into one list of manifest rows.

    Every folder is checked before any is scanned, so a typo fails fast.

    Raises:
        FileNotFoundError: a folder does not exist (names it).
        ValueError: no source was given.

    >>> build_manifest()
    Traceback (most recent call last):
    ...
    ValueError: no source given: pass at least one of --maskedface-net, --ffhq, --voc, --folder
    """
    if not (maskedface_net or ffhq or voc or folder):
        raise ValueError("no source given: pass at least one of --maskedface-net, --ffhq, --voc, --folder")
    for what, paths in (("MaskedFace-Net", maskedface_net), ("FFHQ", ffhq), ("VOC", voc), ("image", folder)):
        for path in paths:
            require_dir(path, what)
    build = ManifestBuild()
    for path in maskedface_net:
        build.rows.extend(scan_maskedface_net(path))
    for path in ffhq:
        build.rows.extend(scan_ffhq(path))
    for path in voc:
        rows, report = scan_voc(path, min_face=min_face)
        build.rows.extend(rows)
        build.voc_reports.append(report)
    for path in folder:
        build.rows.extend(scan_folder(path))
    log.debug("manifest: %d face images", len(build.rows))
    return build
