"""Write a split as a folder tree that torchvision's ImageFolder reads unchanged.

``root/{train,validation,holdout}/{covered,incorrect,uncovered}/<source>_<group>_<index>.<ext>``:
whole-file faces are hard-linked (or symlinked, or copied), crop specs (VOC boxes, head shots) are cut
once by `crop_face` and saved as JPEG. ``split_manifest.csv`` sits beside them. A marker file records a
fingerprint of the inputs and the crop policy the faces were cut with (`tree_crop_policy`, which
`train` records in its checkpoints): re-running with the same inputs rewrites nothing; writing over
a different tree needs ``overwrite=True``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from maskdetect.data.manifest import SPLIT_MANIFEST_NAME, ManifestRow, rows_to_csv, write_text_if_changed
from maskdetect.data.split import SPLITS
from maskdetect.faces.crop import CropPolicy, crop_face
from maskdetect.fileio import atomic_path
from maskdetect.images import open_image
from maskdetect.labels import CLASSES

log = logging.getLogger(__name__)

LINK_MODES: tuple[str, ...] = ("hard", "sym", "copy")
MARKER = ".maskdetect-tree.json"
DEFAULT_CROP_SIZE = 256
JPEG_QUALITY = 95


@dataclass
class TreeResult:
    """What writing a tree did."""

    root: Path
    written: int = 0
    unchanged: int = 0
    failed: int = 0


def tree_file_names(rows: Sequence[ManifestRow]) -> list[str]:
    """Stable, unique relative paths ``split/label/source_group_index.ext`` for rows with a split.

    The index counts a group's rows in (path, box) order, so the name does not depend on row order.

    >>> rows = [ManifestRow("/d/p.png", (0, 0, 9, 9), "covered", group="set/p", source="voc", split="train")]
    >>> tree_file_names(rows)
    ['train/covered/voc_set-p_000.jpg']
    """
    by_group: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        if row.split not in SPLITS:
            raise ValueError(f"{row.path}: split {row.split!r} is not one of {', '.join(SPLITS)}")
        by_group[row.group].append(index)
    names = [""] * len(rows)
    for group, indices in by_group.items():
        ordered = sorted(indices, key=lambda i: (rows[i].path, rows[i].box or ()))
        for number, index in enumerate(ordered):
            row = rows[index]
            ext = ".jpg" if row.box is not None else Path(row.path).suffix.lower()
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{row.source or 'src'}_{group}").strip("-.")
            names[index] = f"{row.split}/{row.label}/{stem}_{number:03d}{ext}"
    return names


def _fingerprint(rows: Sequence[ManifestRow], options: dict) -> str:
    digest = hashlib.sha256(rows_to_csv(rows).encode())
    digest.update(json.dumps(options, sort_keys=True).encode())
    return digest.hexdigest()


def write_split_tree(
    rows: Sequence[ManifestRow],
    root: str | os.PathLike,
    *,
    link: str = "hard",
    size: int = DEFAULT_CROP_SIZE,
    policy: CropPolicy | None = None,
    overwrite: bool = False,
    workers: int = 2,
) -> TreeResult:
    """Write the ImageFolder tree for split rows, and ``split_manifest.csv`` beside it.

    Args:
        rows: manifest rows with ``split`` set (see `maskdetect.data.split.assign_splits`).
        root: the tree's folder.
        link: how whole-file faces get there: ``hard`` (falls back to a copy across file systems),
            ``sym`` or ``copy``.
        size: side of the square JPEG crops, in pixels.
        policy: the crop policy (default `CropPolicy()`).
        overwrite: replace a different tree already at `root`.
        workers: processes cutting crops.

    Raises:
        ValueError: a bad link mode, size or split.
        FileExistsError: `root` holds something else and `overwrite` is False.

    >>> write_split_tree([], "/tmp/x", link="soft")
    Traceback (most recent call last):
    ...
    ValueError: link mode must be one of hard, sym, copy, got 'soft'
    """
    if link not in LINK_MODES:
        raise ValueError(f"link mode must be one of {', '.join(LINK_MODES)}, got {link!r}")
    if size < 8:
        raise ValueError(f"crop size must be at least 8 pixels, got {size}")
    policy = policy or CropPolicy()
    root = Path(root)
    names = tree_file_names(rows)
    fingerprint = _fingerprint(rows, {"link": link, "size": size, "policy": policy.to_dict()})
    _prepare_root(root, fingerprint, overwrite)
    result = TreeResult(root=root)
    # Every class folder in every split, so ImageFolder's class indices always follow CLASSES.
    for split in sorted({r.split for r in rows}):
        for label in CLASSES:
            (root / split / label).mkdir(parents=True, exist_ok=True)
    crops: dict[str, list[tuple[tuple[float, ...], str]]] = defaultdict(list)
    for row, name in zip(rows, names, strict=True):
        target = root / name
        if target.exists() or target.is_symlink():
            result.unchanged += 1
        elif row.box is None:
            _place_file(Path(row.path), target, link)
            result.written += 1
        else:
            crops[row.path].append((row.box, str(target)))
    tasks = [(path, boxes, size, policy.to_dict()) for path, boxes in sorted(crops.items())]
    if workers > 1 and len(tasks) > 8:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            outcomes = list(pool.imap_unordered(_write_crops, tasks, chunksize=4))
    else:
        outcomes = [_write_crops(t) for t in tasks]
    for written, error in outcomes:
        result.written += written
        if error:
            result.failed += 1
            log.error("%s", error)
    manifest_text = rows_to_csv([r.replace(tree_path=n) for r, n in zip(rows, names, strict=True)])
    write_text_if_changed(root / SPLIT_MANIFEST_NAME, manifest_text)
    marker = {
        "fingerprint": fingerprint, "images": len(rows), "crop_policy": policy.to_dict(), "crop_size": size
    }
    write_text_if_changed(root / MARKER, json.dumps(marker) + "\n")
    log.debug("tree %s: %d written, %d unchanged, %d failed", root, result.written, result.unchanged,
             result.failed)
    return result


def tree_crop_policy(root: str | os.PathLike) -> CropPolicy | None:
    """The crop policy a split tree's faces were cut with, as its marker records it.

    None for a folder without a marker (made by hand) or a tree written before markers recorded it.

    Raises:
        ValueError: the marker is there but unreadable or its policy is malformed.

    >>> tree_crop_policy("/nonexistent") is None
    True
    """
    marker = Path(root) / MARKER
    if not marker.is_file():
        return None
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8")).get("crop_policy")
        return None if recorded is None else CropPolicy.from_dict(recorded)
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{marker}: not a readable split-tree marker ({err})") from None


def _prepare_root(root: Path, fingerprint: str, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder")
    marker = root / MARKER
    # Only a tree's own entries count: other files beside it (e.g. manifests) are left alone.
    if not marker.exists() and not any((root / name).exists() for name in SPLITS):
        root.mkdir(parents=True, exist_ok=True)
        return
    same = False
    if marker.is_file():
        try:
            same = json.loads(marker.read_text()).get("fingerprint") == fingerprint
        except (json.JSONDecodeError, AttributeError):
            same = False
    if same:
        return
    if not overwrite:
        raise FileExistsError(
            f"{root} already holds {'a different split tree' if marker.is_file() else 'split folders'}; "
            "pass --overwrite to replace it, or choose another folder"
        )
    log.warning("overwriting the split tree in %s", root)
    for name in (*SPLITS, MARKER, SPLIT_MANIFEST_NAME):
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _place_file(source: Path, target: Path, link: str) -> None:
    # A link under a temporary name, renamed into place: never a half-made file under the real name.
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    tmp.unlink(missing_ok=True)
    try:
        if link == "sym":
            os.symlink(source.resolve(), tmp)
        elif link == "hard":
            try:
                os.link(source, tmp)
            except OSError as err:
                if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                log.debug("hard link %s failed (%s): copying", source, err)
                shutil.copy2(source, tmp)
        else:
            shutil.copy2(source, tmp)
        os.replace(tmp, target)
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()


def _write_crops(task: tuple[str, list, int, dict]) -> tuple[int, str]:
    path, boxes, size, policy_dict = task
    policy = CropPolicy.from_dict(policy_dict)
    try:
        image = open_image(path)
    except (ValueError, OSError) as err:
        return 0, f"{path}: cannot cut crops ({err})"
    for box, target in boxes:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        crop = crop_face(image, tuple(box), policy, size=size)
        with atomic_path(target) as tmp:
            crop.save(tmp, format="JPEG", quality=JPEG_QUALITY)
    return len(boxes), ""
