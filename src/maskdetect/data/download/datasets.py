"""Downloading a whole data set: which files, enough disk, several at once, checksums, extraction.

MaskedFace-Net comes as zip archives whose links the user pastes; their sha256 is recorded in
`DEST/SHA256SUMS` on first download and checked on every later one (pre-fill that file to pin known
hashes). FFHQ comes as single PNG files listed, with their md5, in NVIDIA's ffhq-dataset-v2.json.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from maskdetect.data.download.archive import (
    CHECKSUMS_FILE,
    DamagedArchiveError,
    UnsafeArchiveError,
    extract_zip,
    is_extracted,
)
from maskdetect.data.download.transfer import (
    DownloadError,
    FileSpec,
    check_free_space,
    download_file,
    part_path,
    probe,
)
from maskdetect.fileio import atomic_write_text, file_digest

log = logging.getLogger(__name__)

FFHQ_KINDS = {"thumbnails": "thumbnail", "images": "image"}


@dataclass
class DownloadReport:
    """What a data-set download did.

    Attributes:
        downloaded: relative paths now present and checked.
        extracted: archives extracted in this run.
        skipped: archives left alone because an earlier run extracted them.
        failed: relative path (or URL) -> the reason it failed.
        verified: archives whose zip on disk matched its recorded sha256.
        deleted: archives whose zip was deleted after a clean extraction.
    """

    downloaded: list[str] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    verified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


class DownloadCancelled(Exception):  # noqa: N818 (not a failure of the file: the user stopped it)
    """Raised inside transfer threads to end them when the user interrupts the whole download."""


class ChecksumBook:
    """`DEST/SHA256SUMS` (`HASH  RELPATH` lines, as sha256sum writes them), safe to share across threads."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.hashes: dict[str, str] = {}
        if self.path.exists() and not self.path.is_file():
            # An archive entry SHA256SUMS/x, extracted by a version before issue 31.9, made it a folder.
            raise ValueError(f"{self.path}: not a file (a folder an unsafe archive made?); move it away, "
                             "then run again to record the archives' sha256 anew")
        if self.path.is_file():
            for number, line in enumerate(self.path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                match = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line.strip())
                if not match:
                    raise ValueError(f"{self.path}:{number}: not a 'SHA256  NAME' line: {line!r}")
                self.hashes[match.group(2)] = match.group(1).lower()

    def get(self, relpath: str) -> str | None:
        return self.hashes.get(relpath)

    def record(self, relpath: str, digest: str) -> None:
        with self._lock:
            self.hashes[relpath] = digest
            text = "".join(f"{value}  {name}\n" for name, value in sorted(self.hashes.items()))
            atomic_write_text(self.path, text)


def parse_url_args(
    urls: Iterable[str] = (), urls_file: str | os.PathLike | None = None
) -> list[tuple[str, str]]:
    """(url, name or "") pairs from `--url [NAME=]URL` values and a `URL [NAME]` per line file.

    >>> parse_url_args(["CMFD.zip=https://x/y?id=1", "https://x/IMFD.zip"])
    [('https://x/y?id=1', 'CMFD.zip'), ('https://x/IMFD.zip', '')]
    """
    pairs = []
    for value in urls:
        name, sep, rest = value.partition("=")
        if sep and "/" not in name and ":" not in name:
            pairs.append((rest, name))
        else:
            pairs.append((value, ""))
    if urls_file:
        for line in Path(urls_file).read_text().splitlines():
            fields = line.split()
            if fields and not fields[0].startswith("#"):
                pairs.append((fields[0], fields[1] if len(fields) > 1 else ""))
    for url, _name in pairs:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {url!r}")
    return pairs


def _safe_name(name: str, url: str) -> str:
    name = os.path.basename(name.replace("\\", "/"))
    if name in ("", ".", ".."):
        raise ValueError(f"cannot tell a file name for {url}; give one as NAME.zip=URL")
    return name


def maskedface_net_specs(
    pairs: list[tuple[str, str]], book: ChecksumBook, dest: Path
) -> tuple[list[FileSpec], list[str]]:
    """FileSpecs for the archives still to fetch, and the names of those already extracted.

    Names come from the user, the URL path or the server's Content-Disposition; each archive still
    to fetch is probed for its size, so that the free-disk check and the size check know it.
    """
    specs, done = [], []
    for url, given in pairs:
        name = given
        if not name:
            path_name = os.path.basename(urllib.parse.urlsplit(url).path)
            name = path_name if path_name.lower().endswith(".zip") else ""
        if name:
            name = _safe_name(name, url)
            if is_extracted(dest, name, book.get(name)):
                done.append(name)
                continue
        try:
            info = probe(url)
        except DownloadError as err:
            if not name:
                raise
            log.warning("%s; its size is unknown until it is downloaded", err)
            info = None
        name = _safe_name(name or (info.filename if info else "") or "", url)
        if is_extracted(dest, name, book.get(name)):
            done.append(name)
            continue
        specs.append(FileSpec(url=url, relpath=name, size=info.size if info else None, sha256=book.get(name)))
    return specs, done


def load_ffhq_index(source: str, dest: Path) -> dict:
    """Read ffhq-dataset-v2.json from a local path, or download it (resumably) into `dest` first."""
    if urllib.parse.urlsplit(source).scheme in ("http", "https"):
        path = download_file(FileSpec(url=source, relpath="ffhq-dataset-v2.json"), dest)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"FFHQ index not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def ffhq_specs(
    index: dict, kind: str, limit: int | None = None, base_url: str | None = None
) -> list[FileSpec]:
    """FileSpecs (with size and md5) for the first `limit` FFHQ faces of one kind.

    Args:
        index: the parsed ffhq-dataset-v2.json: {"0": {"image": {...}, "thumbnail": {...}}, ...}.
        kind: "thumbnails" (128 px) or "images" (1024 px).
        limit: how many faces, in id order (None: all).
        base_url: fetch `base_url/file_path` instead of each entry's file_url (a mirror).

    >>> entry = {"file_url": "http://h/a", "file_path": "thumbnails128x128/00000/00000.png",
    ...          "file_size": 3, "file_md5": "abc"}
    >>> ffhq_specs({"0": {"thumbnail": entry}}, "thumbnails")[0].relpath
    'thumbnails128x128/00000/00000.png'
    """
    if kind not in FFHQ_KINDS:
        raise ValueError(f"unknown FFHQ kind {kind!r}; choose one of: {', '.join(FFHQ_KINDS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    key = FFHQ_KINDS[kind]
    ids = sorted(index, key=lambda item: int(item) if str(item).isdigit() else str(item))
    specs = []
    for face_id in ids[:limit]:
        try:
            entry = index[face_id][key]
            relpath = str(entry["file_path"])
            url = f"{base_url.rstrip('/')}/{relpath}" if base_url else str(entry["file_url"])
            size, md5 = int(entry["file_size"]), str(entry["file_md5"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"FFHQ index entry {face_id!r} lacks {key}.file_url/file_path/file_size/file_md5 ({err!r})"
            ) from None
        if Path(relpath).is_absolute() or ".." in Path(relpath).parts:
            raise ValueError(f"FFHQ index entry {face_id!r}: unsafe file_path {relpath!r}")
        specs.append(FileSpec(url=url, relpath=relpath, size=size, md5=md5))
    return specs


def bytes_still_needed(specs: list[FileSpec], dest: Path) -> int:
    """Sum of known sizes minus what is already on disk (complete files and .part files)."""
    need = 0
    for spec in specs:
        target = dest / spec.relpath
        part = part_path(target)
        have = target.stat().st_size if target.exists() else part.stat().st_size if part.exists() else 0
        need += max((spec.size or 0) - have, 0)
    return need


def download_all(
    specs: list[FileSpec],
    dest: Path,
    *,
    jobs: int = 4,
    progress: bool = True,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 30.0,
) -> DownloadReport:
    """Download every spec into `dest`, `jobs` at a time, under one progress bar of bytes."""
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    twice = sorted(name for name, count in Counter(spec.relpath for spec in specs).items() if count > 1)
    if twice:  # two threads would write one .part file
        raise ValueError(f"several links would be saved under the same name: {', '.join(twice)}; "
                         "name them with NAME.zip=URL")
    report = DownloadReport()
    total = sum(spec.size or 0 for spec in specs) or None
    lock, stop = threading.Lock(), threading.Event()
    with tqdm(total=total, unit="B", unit_scale=True, disable=not progress, desc="download") as bar:

        def on_bytes(count: int) -> None:
            if stop.is_set():  # Ctrl-C: end this transfer now; its .part file resumes next time
                raise DownloadCancelled("download interrupted")
            with lock:
                bar.update(count)

        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            futures = {
                pool.submit(download_file, spec, dest, retries=retries, backoff=backoff, timeout=timeout,
                            on_bytes=on_bytes): spec
                for spec in specs
            }
            for future in as_completed(futures):
                spec = futures[future]
                try:
                    future.result()
                    report.downloaded.append(spec.relpath)
                except (DownloadError, OSError) as err:
                    log.error("%s", err)
                    report.failed[spec.relpath] = str(err)
        except BaseException:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    report.downloaded.sort()
    return report


def download_maskedface_net(
    dest: str | os.PathLike,
    pairs: list[tuple[str, str]],
    *,
    extract: bool = True,
    verify: bool = False,
    delete_archives: bool = False,
    **options,
) -> DownloadReport:
    """Download MaskedFace-Net archives, check/record their sha256, extract each one safely.

    Archives already marked extracted are skipped (their zips may have been deleted); with `verify`,
    those whose zip is still there are hashed again and checked against `SHA256SUMS`. With
    `delete_archives`, each zip is deleted once it is extracted and its sha256 recorded (MaskedFace-Net's
    zips are about 39 GB beside as much extracted); otherwise they are kept.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    book = ChecksumBook(dest / CHECKSUMS_FILE)
    todo, done = maskedface_net_specs(pairs, book, dest)
    for name in done:
        log.info("%s: already downloaded and extracted; skipped", name)
    check_free_space(dest, bytes_still_needed(todo, dest))
    report = download_all(todo, dest, **options)
    report.skipped = sorted(done)
    # Every archive this download knows of, whatever its name: no other archive's entry may replace it.
    archives = {*book.hashes, *done, *(spec.relpath for spec in todo)}
    if verify:
        _verify_kept_archives(dest, done, book, report)
    for spec in todo:
        if spec.relpath in report.failed:
            continue
        archive = dest / spec.relpath
        digest = book.get(spec.relpath) or file_digest(archive)
        try:
            if extract and extract_zip(archive, dest, sha256=digest, siblings=archives - {spec.relpath}):
                report.extracted.append(spec.relpath)
        except (UnsafeArchiveError, DamagedArchiveError, OSError) as err:
            # Its hash is not recorded: a damaged download must not become the reference.
            log.error("%s", err)
            report.failed[spec.relpath] = f"not extracted: {err} (delete {archive} to download it again)"
            continue
        if book.get(spec.relpath) is None:
            book.record(spec.relpath, digest)
    if delete_archives and extract:
        for name in [*report.extracted, *report.skipped]:
            if (dest / name).is_file() and name not in report.failed:
                (dest / name).unlink()
                report.deleted.append(name)
                log.info("%s: extracted; zip deleted", name)
    return report


def verify_archives(dest: str | os.PathLike) -> DownloadReport:
    """Hash every zip in `dest` that `DEST/SHA256SUMS` lists, against its recorded sha256; no network.

    Raises:
        FileNotFoundError: `dest` has no SHA256SUMS (written after an archive's first clean extraction).

    >>> verify_archives("/no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /no/such/folder/SHA256SUMS: no such file, nothing to verify the zips against
    """
    dest = Path(dest)
    if not (dest / CHECKSUMS_FILE).is_file():
        raise FileNotFoundError(f"{dest / CHECKSUMS_FILE}: no such file, nothing to verify the zips against")
    book, report = ChecksumBook(dest / CHECKSUMS_FILE), DownloadReport()
    _verify_kept_archives(dest, sorted(book.hashes), book, report)
    return report


def _verify_kept_archives(dest: Path, names: list[str], book: ChecksumBook, report: DownloadReport) -> None:
    for name in names:
        expected, archive = book.get(name), dest / name
        if not archive.is_file() or expected is None:
            log.info("%s: no zip or no recorded sha256 to verify against", name)
            continue
        actual = file_digest(archive)
        if actual != expected:
            report.failed[name] = f"sha256 mismatch: got {actual}, {CHECKSUMS_FILE} says {expected}"
        else:
            report.verified.append(name)
            log.info("%s: sha256 verified", name)


def download_ffhq(
    dest: str | os.PathLike,
    index_source: str,
    *,
    kind: str = "thumbnails",
    limit: int | None = None,
    base_url: str | None = None,
    **options,
) -> DownloadReport:
    """Download FFHQ thumbnails or images listed in ffhq-dataset-v2.json, each checked against its md5."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    specs = ffhq_specs(load_ffhq_index(index_source, dest), kind, limit, base_url)
    check_free_space(dest, bytes_still_needed(specs, dest))
    return download_all(specs, dest, **options)

