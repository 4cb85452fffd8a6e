"""FFHQ: ``images1024x1024/<thousands>/<id>.png`` or ``thumbnails128x128/<thousands>/<id>.png``.

Uncovered faces. The group is the FFHQ id, the same as the MaskedFace-Net images made from that face.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from maskdetect.data.manifest import ManifestRow, require_dir
from maskdetect.data.maskedface_net import ffhq_group, headshot_row
from maskdetect.images import find_files
from maskdetect.labels import UNCOVERED

log = logging.getLogger(__name__)

SOURCE = "ffhq"
LAYOUTS: tuple[str, ...] = ("images1024x1024", "thumbnails128x128")


def scan_ffhq(root: str | os.PathLike) -> Iterator[ManifestRow]:
    """Rows for every FFHQ image under `root` (the folder holding images1024x1024/ or thumbnails128x128/).

    If both resolutions are present, the full-size images are used.

    Raises:
        FileNotFoundError: `root` is not a folder, or holds neither layout.

    >>> import tempfile
    >>> list(scan_ffhq(tempfile.mkdtemp()))
    Traceback (most recent call last):
    ...
    FileNotFoundError: no images1024x1024/ or thumbnails128x128/ folder in ...
    """
    root = require_dir(root, "FFHQ").resolve()
    layout = next((root / name for name in LAYOUTS if (root / name).is_dir()), None)
    if layout is None:
        raise FileNotFoundError(f"no {'/ or '.join(LAYOUTS)}/ folder in {root}")
    for path in find_files(layout, (".png",)):
        if not path.stem.isdigit():
            log.warning("%s: not an FFHQ file name, skipped", path)
            continue
        yield headshot_row(path, UNCOVERED, "", ffhq_group(path.stem), SOURCE, root.name)
