"""Extracting zip archives safely: nothing outside the destination, no zip bombs, no half files.

Every entry is checked from the central directory before a byte is written (names that escape the
destination, symlinks, total size, compression ratio), then again while streaming (bytes actually
produced, in case the directory lies). Entries are extracted into a temporary folder inside the
destination and moved into place only when the whole archive extracted cleanly; a marker file then
records that the archive is done, holding the archive's sha256, so a re-run skips it only when the
marker proves it is about that very archive. Archive contents never reach the control files nor
the download's other files, which all sit at the top of the destination: an entry whose first path
component is `SHA256SUMS`, the marker folder, a staging folder, a zip, a transfer's `.part` or
`.validator` file, this archive or a sibling the caller names (another archive of the download) is
refused, whatever lies below it (`SHA256SUMS/x` would turn the checksum file into a folder).
The layout stays flat (each archive's own top folders, CMFD/ and IMFD/, straight under the
destination), so folders extracted by earlier versions keep working as they are.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from maskdetect.data.download.transfer import PART_SUFFIX, VALIDATOR_SUFFIX
from maskdetect.data.download.transfer import check_free_space as ensure_free_space
from maskdetect.fileio import atomic_write_text, file_digest

log = logging.getLogger(__name__)

MARKER_DIR = ".extracted"
CHECKSUMS_FILE = "SHA256SUMS"
STAGING_PREFIX = ".extract-"
# JPEG and PNG files barely compress; a ratio far above this is a bomb, not a photo collection.
DEFAULT_MAX_RATIO = 100.0
DEFAULT_MAX_TOTAL_BYTES = 200 * 1024**3
DEFAULT_MAX_ENTRIES = 1_000_000


class UnsafeArchiveError(ValueError):
    """An archive that would write outside its destination, or expands far too much."""


class DamagedArchiveError(ValueError):
    """An archive that is not a readable zip, or whose data fails its CRC check."""


@dataclass(frozen=True)
class ExtractLimits:
    """How much an archive may expand.

    Attributes:
        max_total_bytes: the most uncompressed bytes all entries together may hold.
        max_ratio: the most uncompressed bytes per compressed byte, per entry and overall.
        max_entries: the most entries an archive may have.
    """

    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_ratio: float = DEFAULT_MAX_RATIO
    max_entries: int = DEFAULT_MAX_ENTRIES


def marker_path(dest: str | os.PathLike, archive: str | os.PathLike) -> Path:
    """The file that says `archive` was fully extracted into `dest`.

    >>> marker_path("/data", "/downloads/CMFD.zip").as_posix()
    '/data/.extracted/CMFD.zip.done'
    """
    return Path(dest) / MARKER_DIR / f"{Path(archive).name}.done"


def is_extracted(dest: str | os.PathLike, archive: str | os.PathLike, sha256: str | None) -> bool:
    """True when a previous run extracted the archive whose hash is `sha256` into `dest` completely.

    The marker must hold that hash: a marker written by anything else (by hand, or left from another
    archive of the same name) never makes a run skip an archive. No known hash: not extracted.

    >>> is_extracted("/no/such/folder", "CMFD.zip", "ab" * 32)
    False
    """
    marker = marker_path(dest, archive)
    if sha256 is None or not marker.is_file() or marker.is_symlink():
        return False
    try:
        first = marker.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
    except OSError:
        return False
    return first == f"sha256 {sha256}"


def _safe_relpath(info: zipfile.ZipInfo, archive: Path, siblings: frozenset[str]) -> PurePosixPath | None:
    """The entry's path relative to the destination, None for a directory; raise when unsafe."""
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} is a symbolic link; refused")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} has an absolute path; refused")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} climbs out with '..'; refused")
    if parts and _reserved(parts[0], archive, siblings):
        raise UnsafeArchiveError(
            f"{archive}: entry {info.filename!r} is named like a control file of the download or "
            f"another downloaded file ({CHECKSUMS_FILE}, {MARKER_DIR}/, {STAGING_PREFIX}*, *.zip, "
            f"*{PART_SUFFIX}, *{VALIDATOR_SUFFIX}, this archive or another one); refused"
        )
    if info.is_dir() or not parts:
        return None
    return PurePosixPath(*parts)


def _reserved(first: str, archive: Path, siblings: frozenset[str]) -> bool:
    # Only the first component matters: every control and sibling file sits at the destination's top,
    # and a folder of that name (SHA256SUMS/x, NAME.zip.part/y) breaks the file as surely as a file.
    # Compared without case, as macOS and Windows file systems do.
    first = first.casefold()
    if first in (MARKER_DIR.casefold(), CHECKSUMS_FILE.casefold()) or first.startswith(STAGING_PREFIX):
        return True
    if first.endswith((".zip", PART_SUFFIX, VALIDATOR_SUFFIX)):  # the download's archives and transfers
        return True
    return first in {archive.name.casefold(), *siblings}


def inspect_archive(
    archive: str | os.PathLike, limits: ExtractLimits | None = None, siblings: Iterable[str] = ()
) -> tuple[list[tuple[zipfile.ZipInfo, PurePosixPath]], int]:
    """Check an archive's central directory; return its files (entry, relative path) and total size.

    `siblings` names the other files the download keeps beside the archive (its other archives,
    whatever their names): no entry may land on one of them, nor on the download's control files.

    Raises:
        DamagedArchiveError: not a readable zip.
        UnsafeArchiveError: a path escapes, a symlink, too many entries, too large, or too compressed.

    >>> inspect_archive.__doc__.startswith("Check")
    True
    """
    path = Path(archive)
    limits = limits or ExtractLimits()
    try:
        with zipfile.ZipFile(path) as zipped:
            infos = zipped.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise DamagedArchiveError(f"{path}: not a readable zip archive ({err})") from None
    if len(infos) > limits.max_entries:
        raise UnsafeArchiveError(f"{path}: {len(infos):,} entries, over the limit of {limits.max_entries:,}")
    reserved = frozenset(name.casefold() for name in siblings)
    files, total, compressed = [], 0, 0
    folders: set[str] = set()
    for info in infos:
        relpath = _safe_relpath(info, path, reserved)
        if relpath is None:
            continue
        folders.update(parent.as_posix().casefold() for parent in relpath.parents if parent.parts)
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_ratio:
            raise UnsafeArchiveError(
                f"{path}: entry {info.filename!r} expands {ratio:,.0f}x "
                f"({info.compress_size:,} -> {info.file_size:,} bytes), "
                f"over the limit of {limits.max_ratio:g}x"
            )
        total += info.file_size
        compressed += info.compress_size
        files.append((info, relpath))
    for _info, relpath in files:
        if relpath.as_posix().casefold() in folders:  # a file where another entry needs a folder
            raise UnsafeArchiveError(
                f"{path}: entry {relpath.as_posix()!r} is both a file and a folder of other entries; refused"
            )
    if total > limits.max_total_bytes:
        raise UnsafeArchiveError(
            f"{path}: {total:,} bytes uncompressed, over the limit of {limits.max_total_bytes:,}"
        )
    return files, total


def _check_room(archive: Path, dest: Path, files: list[tuple[zipfile.ZipInfo, PurePosixPath]]) -> None:
    """Raise when an entry needs a folder where `dest` holds a file, or would replace a folder.

    Checked before a byte is written: found while moving files into place, it left half an archive.
    """
    folders: set[PurePosixPath] = set()
    for info, relpath in files:
        folders.update(relpath.parents[:-1])
        if (dest / relpath).is_dir():
            raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} would replace the folder "
                                     f"{dest / relpath}; nothing extracted")
    for folder in sorted(folders):
        path = dest / folder
        if os.path.lexists(path) and not path.is_dir():
            raise UnsafeArchiveError(f"{archive}: entries need {path} to be a folder, but it is a file; "
                                     "nothing extracted")


def _stream_entry(
    zipped: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limits: ExtractLimits, budget: int
) -> int:
    """Copy one entry to `target`, stopping when it produces more than declared; return bytes written."""
    written = 0
    limit = min(info.file_size, budget)
    with zipped.open(info) as source, open(target, "wb") as out:
        while block := source.read(1 << 20):
            written += len(block)
            if written > limit or written > limits.max_ratio * max(info.compress_size, 1):
                raise UnsafeArchiveError(
                    f"{zipped.filename}: entry {info.filename!r} produced more than its declared "
                    f"{info.file_size:,} bytes (or the size limit); refused"
                )
            out.write(block)
    return written


def extract_zip(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    limits: ExtractLimits | None = None,
    check_free_space: bool = True,
    sha256: str | None = None,
    siblings: Iterable[str] = (),
) -> int:
    """Extract a zip into `dest` safely; return the number of files extracted (0 when already done).

    All entries go first into a temporary folder inside `dest`; only when every one of them was
    written and passed its CRC check are they moved into place, and a marker file holding the
    archive's sha256 (`sha256`, or hashed here when not given) is written. `siblings`: the other
    files of the download beside the archive, which no entry may replace (see `inspect_archive`).

    Raises:
        UnsafeArchiveError: see `inspect_archive`; an entry needs a folder where `dest` has a file
            or would replace a folder; or an entry produced more than it declared.
        DamagedArchiveError: unreadable zip, or an entry's data fails its CRC check.
        NotEnoughSpaceError: too little free space in `dest` (the message names need and free space).

    >>> extract_zip.__doc__.startswith("Extract")
    True
    """
    archive, dest = Path(archive), Path(dest)
    limits = limits or ExtractLimits()
    sha256 = sha256 or file_digest(archive)
    if is_extracted(dest, archive, sha256):
        log.info("%s: already extracted into %s", archive.name, dest)
        return 0
    files, total = inspect_archive(archive, limits, siblings)
    dest.mkdir(parents=True, exist_ok=True)
    _check_room(archive, dest, files)
    if check_free_space:
        ensure_free_space(dest, total, f"extracting {archive.name}")
    for stale in dest.glob(f"{STAGING_PREFIX}{archive.name}.*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{archive.name}.", dir=dest))
    try:
        produced = 0
        with zipfile.ZipFile(archive) as zipped:
            for info, relpath in files:
                target = staging.joinpath(*relpath.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    produced += _stream_entry(zipped, info, target, limits, limits.max_total_bytes - produced)
                except (zipfile.BadZipFile, EOFError, zlib.error) as err:
                    raise DamagedArchiveError(
                        f"{archive}: entry {info.filename!r} is damaged ({err})"
                    ) from None
        for _info, relpath in files:
            final = dest.joinpath(*relpath.parts)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging.joinpath(*relpath.parts), final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    atomic_write_text(marker_path(dest, archive), f"sha256 {sha256}\n{len(files)} files, {total} bytes\n")
    log.info("%s: extracted %d files into %s", archive.name, len(files), dest)
    return len(files)

