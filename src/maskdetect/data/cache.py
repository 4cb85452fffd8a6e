"""A resized copy of an ImageFolder tree, so that every epoch decodes small files.

Each image is decoded once with JPEG draft mode (libjpeg's DCT scaling decodes a 1024 px file at
1/2, 1/4 or 1/8 scale directly, never smaller than the target), its shorter side is resized to
`size` (aspect kept: the training transforms crop it) or, with `mode="square"`, the whole image is
squeezed to `size` x `size`; it is written as JPEG under the same relative path (`.jpg` appended to
other suffixes). Work is spread over every core. A record `.maskdetect-cache.json` keeps the cache
parameters and each source's size and mtime, so a re-run only redoes new or changed files, and a
change of size, mode or quality redoes all of them. Cached files whose source left the tree (a
re-split moved it to another split) are deleted, so that a cache never leaks images across splits.
The source tree's crop policy is recorded in the copy, for `train`.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from maskdetect.data.tree import MARKER as TREE_MARKER
from maskdetect.data.tree import tree_crop_policy
from maskdetect.fileio import atomic_write_text
from maskdetect.images import ImageError, find_images, open_image

log = logging.getLogger(__name__)

RECORD_FILE = ".maskdetect-cache.json"
MODES = ("shorter", "square")


@dataclass
class CacheReport:
    """What a cache build did.

    Attributes:
        written: images decoded, resized and written in this run.
        up_to_date: images skipped because their cached copy is current.
        failed: relative path -> why it was skipped (corrupt, truncated, not an image...).
        removed: cached files deleted because their source is no longer in the tree.
    """

    written: int = 0
    up_to_date: int = 0
    removed: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def cached_name(relpath: str) -> str:
    """The cached file's relative path: JPEG files keep theirs, others get `.jpg` appended.

    >>> cached_name("train/covered/a.png"), cached_name("train/covered/b.JPG")
    ('train/covered/a.png.jpg', 'train/covered/b.JPG')
    """
    return relpath if relpath.lower().endswith((".jpg", ".jpeg")) else relpath + ".jpg"


def target_size(width: int, height: int, size: int, mode: str) -> tuple[int, int]:
    """The output size: shorter side to `size` (aspect kept) or `size` x `size`.

    >>> target_size(1024, 768, 160, "shorter"), target_size(1024, 768, 160, "square")
    ((213, 160), (160, 160))
    """
    if mode == "square":
        return size, size
    if mode != "shorter":
        raise ValueError(f"unknown resize mode {mode!r}; choose one of: {', '.join(MODES)}")
    scale = size / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_image(
    source: str | os.PathLike, size: int, mode: str = "shorter", draft: bool = True
) -> Image.Image:
    """Decode `source` (draft mode first when `draft`) and resize it for the cache.

    Raises:
        ImageError: the file is empty, corrupt, truncated or not an image (the message names it).

    >>> from PIL import Image; import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jpg"; Image.new("RGB", (400, 300)).save(p)
    >>> resize_image(p, 60).size
    (80, 60)
    """
    image = open_image(source, draft_size=(size, size) if draft else None)
    # reducing_gap=3: a big shrink (a 1024 px PNG, which has no draft mode) first box-reduces by an
    # integer factor; Pillow documents the result as indistinguishable from full resampling.
    return image.resize(target_size(*image.size, size, mode), Image.Resampling.BICUBIC, reducing_gap=3.0)


def _cache_one(task: tuple[str, str, str, int, str, int, int]) -> tuple[str, str | None]:
    """Pool worker: resize one file into the cache; return (relpath, error message or None)."""
    relpath, source, target, size, mode, quality, mtime_ns = task
    try:
        image = resize_image(source, size, mode)
        _save_jpeg_by_rename(image, Path(target), quality)
        os.utime(target, ns=(mtime_ns, mtime_ns))
    except (ImageError, OSError) as err:
        return relpath, str(err)
    return relpath, None


def _save_jpeg_by_rename(image: Image.Image, target: Path, quality: int) -> None:
    """Write to a temporary name, then rename: a crash never leaves a half file under the real name.

    Unlike `maskdetect.fileio.atomic_path` this skips the per-file fsync, which cut the cache's speed
    six-fold on small files here (118 against 709 saves/s). Durability comes once per build instead:
    `build_cache` calls os.sync() before it writes the record, and a file missing from the record is
    simply redone by the next run.
    """
    # One name per process: workers never share one, and a name left by a killed run is overwritten.
    tmp_name = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        image.save(tmp_name, "JPEG", quality=quality)
        os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def list_images(root: Path) -> list[str]:
    """Relative paths (forward slashes, sorted as strings) of every image `find_images` finds under `root`.

    >>> list_images(Path("/nonexistent"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent: no such folder
    """
    found = find_images(root, on_skip=lambda path, why: log.warning("%s: %s, skipped", path, why))
    return sorted(path.relative_to(root).as_posix() for path in found)


def list_folders(root: Path) -> list[str]:
    """Relative paths of every folder under `root` (not hidden), following links."""
    found = []
    for folder, dirs, _files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(folder, d).relative_to(root).as_posix() for d in dirs)
    return found


def _load_record(dest: Path, params: dict) -> tuple[dict[str, list[int]], set[str]]:
    """(source stats still valid for skipping, every source name the cache holds a file for)."""
    path = dest / RECORD_FILE
    if not path.is_file():
        return {}, set()
    try:
        record = json.loads(path.read_text())
        files = dict(record.get("files", {}))
    except (json.JSONDecodeError, OSError, AttributeError, TypeError, ValueError) as err:
        log.warning("%s: unreadable (%s); rebuilding every file", path, err)
        return {}, set()
    if record.get("params") != params:
        log.warning("cache %s was built with %s, now %s: rebuilding all", dest, record.get("params"), params)
        return {}, set(files)
    return files, set(files)


def build_cache(
    src: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    size: int = 160,
    mode: str = "shorter",
    quality: int = 90,
    jobs: int | None = None,
    progress: bool = True,
) -> CacheReport:
    """Resize every image of the tree `src` into the same layout under `dest`.

    Args:
        src: an ImageFolder tree (e.g. root/{train,validation,holdout}/{covered,incorrect,uncovered}).
        dest: where the resized tree goes (created; may be re-used: only stale files are redone).
        size: the shorter side (mode "shorter") or both sides (mode "square") in pixels.
        mode: "shorter" (keep aspect) or "square" (squeeze).
        quality: JPEG quality of the cached files.
        jobs: worker processes (default: every core); 1 runs in this process.
        progress: show a tqdm progress bar.

    Returns:
        A CacheReport; corrupt images are logged by name and listed in `failed`, not fatal.

    Raises:
        FileNotFoundError: `src` is not a folder.
        ValueError: a bad size, mode, quality or jobs value, or `dest` inside `src`.

    >>> build_cache.__doc__.startswith("Resize")
    True
    """
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise FileNotFoundError(f"source tree not found: {src}")
    if size < 8:
        raise ValueError(f"--size must be at least 8 pixels, got {size}")
    target_size(size, size, size, mode)  # validates mode
    if not 1 <= quality <= 100:
        raise ValueError(f"--quality must be 1..100, got {quality}")
    if src.resolve() == dest.resolve() or src.resolve() in dest.resolve().parents:
        raise ValueError(f"cache folder {dest} must not be inside the source tree {src}")
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    policy = tree_crop_policy(src)  # read first: a broken marker fails before any work
    params = {"size": size, "mode": mode, "quality": quality}
    dest.mkdir(parents=True, exist_ok=True)
    old, held = _load_record(dest, params)
    for folder in list_folders(src):  # empty class folders too: ImageFolder's class indices must match
        (dest / folder).mkdir(parents=True, exist_ok=True)
    files: dict[str, list[int]] = {}
    report, tasks = CacheReport(), []
    for relpath in list_images(src):
        stat = (src / relpath).stat()
        files[relpath] = [stat.st_size, stat.st_mtime_ns]
        target = dest / cached_name(relpath)
        if old.get(relpath) == files[relpath] and target.is_file():
            report.up_to_date += 1
        else:
            tasks.append((relpath, str(src / relpath), str(target), size, mode, quality, stat.st_mtime_ns))
    # Files whose source left the tree (a re-split moved it) would leak across splits: remove them.
    for relpath in sorted(held - files.keys()):
        (dest / cached_name(relpath)).unlink(missing_ok=True)
        report.removed += 1
    try:
        _run(tasks, jobs, progress, report, files)
        for relpath in report.failed:  # an older good copy must not outlive a now-broken source
            (dest / cached_name(relpath)).unlink(missing_ok=True)
    finally:
        # Written even when interrupted, so that finished files are not redone; after os.sync(), so that
        # every file the record lists is on disk even if the power fails.
        os.sync()
        record = {"params": params, "files": {k: v for k, v in files.items() if k not in report.failed}}
        atomic_write_text(dest / RECORD_FILE, json.dumps(record, indent=0, sort_keys=True))
    if policy is not None:  # `train` on the copy must record the crop policy its faces were cut with
        marker = {"crop_policy": policy.to_dict(), "resized_copy_of": str(src)}
        atomic_write_text(dest / TREE_MARKER, json.dumps(marker) + "\n")
    return report


def _run(tasks: list, jobs: int, progress: bool, report: CacheReport, files: dict[str, list[int]]) -> None:
    pending = {task[0] for task in tasks}
    try:
        with tqdm(total=len(tasks), unit="img", disable=not progress, desc="cache") as bar:
            if jobs == 1 or len(tasks) < 2:
                _collect(map(_cache_one, tasks), bar, report, pending)
            else:
                # Fork starts workers in milliseconds (spawn re-imports numpy and PIL in each: about a
                # second, as long as caching 100 images); workers only run Pillow, never torch.
                method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
                context = multiprocessing.get_context(method)
                with context.Pool(min(jobs, len(tasks))) as pool:
                    _collect(pool.imap_unordered(_cache_one, tasks, chunksize=8), bar, report, pending)
    finally:
        for relpath in pending:  # never finished (interrupted): redo next time
            files.pop(relpath, None)


def _collect(results, bar: tqdm, report: CacheReport, pending: set[str]) -> None:
    for relpath, error in results:
        pending.discard(relpath)
        if error:
            log.warning("skipped %s", error)
            report.failed[relpath] = error
        else:
            report.written += 1
        bar.update(1)
