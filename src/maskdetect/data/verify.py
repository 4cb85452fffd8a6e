"""Verify a manifest: decode every image once, drop the ones that fail and exact duplicates.

Corrupt, truncated, empty, non-image and over-sized (decompression-bomb) files are reported by name
with the reason and excluded; so is every row whose face image (`content_id`) already appeared.
Decoding also yields each file's true size and its difference hash for near-duplicate grouping.
"""

from __future__ import annotations

import csv
import io
import logging
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from maskdetect.data.dedup import DEFAULT_HASH_SIZE, dhash
from maskdetect.data.manifest import ManifestRow, write_text_if_changed
from maskdetect.images import DEFAULT_MAX_PIXELS, ImageError, open_image

log = logging.getLogger(__name__)


@dataclass
class Exclusion:
    """A row left out, and why."""

    path: str
    box: str
    reason: str


@dataclass
class Verification:
    """The rows that passed and the ones excluded."""

    rows: list[ManifestRow] = field(default_factory=list)
    excluded: list[Exclusion] = field(default_factory=list)


@dataclass(frozen=True)
class _Decoded:
    path: str
    error: str = ""
    width: int = 0
    height: int = 0
    dhash: str = ""


def _decode(task: tuple[str, int]) -> _Decoded:
    path, max_pixels = task
    try:
        image = open_image(path, max_pixels=max_pixels)
    except ImageError as err:
        return _Decoded(path, error=str(err).removeprefix(f"{path}: "))
    except OSError as err:  # unreadable file (permissions, vanished)
        return _Decoded(path, error=f"cannot read ({err})")
    return _Decoded(path, width=image.width, height=image.height, dhash=dhash(image, DEFAULT_HASH_SIZE))


def decode_all(
    paths: Sequence[str], max_pixels: int = DEFAULT_MAX_PIXELS, workers: int = 2
) -> dict[str, _Decoded]:
    """Decode every path (in `workers` processes); return what each gave, by path."""
    tasks = [(p, max_pixels) for p in paths]
    if workers <= 1 or len(tasks) < 16:
        return {d.path: d for d in map(_decode, tasks)}
    # spawn, not fork: the caller may hold threads (torch), and fork with threads can deadlock.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return {d.path: d for d in pool.imap_unordered(_decode, tasks, chunksize=8)}


def verify_rows(
    rows: Sequence[ManifestRow], *, max_pixels: int = DEFAULT_MAX_PIXELS, workers: int = 2
) -> Verification:
    """Decode every file of `rows` once; keep the rows whose file decodes and whose face is new.

    Args:
        rows: manifest rows.
        max_pixels: files whose header claims more pixels are excluded without being decoded.
        workers: processes decoding in parallel.

    Returns:
        A `Verification`: the good rows (with true width/height and dhash) and the exclusions.

    >>> verify_rows([ManifestRow("/no/such.jpg", None, "covered")], workers=1).excluded[0].reason
    'no such file'
    """
    decoded = decode_all(sorted({r.path for r in rows}), max_pixels=max_pixels, workers=workers)
    result = Verification()
    seen: dict[str, str] = {}
    for row in rows:
        box = "" if row.box is None else ",".join(f"{v:g}" for v in row.box)
        info = decoded[row.path]
        if info.error:
            result.excluded.append(Exclusion(row.path, box, info.error))
            continue
        if row.box is not None and not _box_inside(row.box, info.width, info.height):
            reason = f"box outside the {info.width}x{info.height} image"
            result.excluded.append(Exclusion(row.path, box, reason))
            continue
        key = row.content_id if row.sha256 else f"{row.path}:{box}"
        if key in seen:
            result.excluded.append(Exclusion(row.path, box, f"exact duplicate of {seen[key]}"))
            continue
        seen[key] = row.path + (f" [{box}]" if box else "")
        result.rows.append(row.replace(width=info.width, height=info.height, dhash=info.dhash))
    log.debug("verify: %d rows kept, %d excluded", len(result.rows), len(result.excluded))
    return result


def _box_inside(box: tuple[float, ...], width: int, height: int) -> bool:
    x0, y0, x1, y1 = box
    return x1 > x0 and y1 > y0 and x0 < width and y0 < height and x1 > 0 and y1 > 0


def write_exclusions(excluded: Sequence[Exclusion], path: str | os.PathLike) -> None:
    """Write the excluded rows as a CSV (path, box, reason), atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "box", "reason"])
    writer.writerows([e.path, e.box, e.reason] for e in excluded)
    write_text_if_changed(path, out.getvalue())
